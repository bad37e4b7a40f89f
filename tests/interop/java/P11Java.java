// A SunPKCS11 host: loads the module from a provider configuration, lists the KeyStore's
// aliases, signs with each requested key and algorithm and verifies in Java with the
// certificate's public key. Prints one line per fact, for the test to check.
//   java P11Java <provider.cfg> <pin> [command]...
// commands: sign:<alias>:<algorithm>  decrypt:<alias>:<hex RSA PKCS#1 ciphertext>
//           aes:<alias>  generate:EC
import java.security.Key;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;

public class P11Java {
    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, args[1].toCharArray());
        List<String> aliases = Collections.list(store.aliases());
        Collections.sort(aliases);
        for (String alias : aliases) {
            String kind = store.entryInstanceOf(alias, KeyStore.PrivateKeyEntry.class) ? "private"
                : store.entryInstanceOf(alias, KeyStore.SecretKeyEntry.class) ? "secret" : "other";
            System.out.println("alias " + alias + " " + kind);
        }
        for (int i = 2; i < args.length; i++) {
            String[] command = args[i].split(":");
            switch (command[0]) {
                case "sign" -> sign(provider, store, command[1], command[2]);
                case "decrypt" -> {
                    Cipher rsa = Cipher.getInstance("RSA/ECB/PKCS1Padding", provider);
                    rsa.init(Cipher.DECRYPT_MODE, store.getKey(command[1], null));
                    byte[] plain = rsa.doFinal(HexFormat.of().parseHex(command[2]));
                    System.out.println("decrypted " + command[1] + " " + hex(plain));
                }
                case "aes" -> {
                    Key key = store.getKey(command[1], null);
                    IvParameterSpec iv = new IvParameterSpec(new byte[16]);
                    byte[] plain = "Java encrypts with the HSM's AES key".getBytes();
                    Cipher enc = Cipher.getInstance("AES/CBC/PKCS5Padding", provider);
                    enc.init(Cipher.ENCRYPT_MODE, key, iv);
                    byte[] cipher = enc.doFinal(plain);
                    Cipher dec = Cipher.getInstance("AES/CBC/PKCS5Padding", provider);
                    dec.init(Cipher.DECRYPT_MODE, key, iv);
                    System.out.println("aes " + command[1] + " " + hex(plain) + " " + hex(cipher)
                        + " " + hex(dec.doFinal(cipher)));
                }
                case "generate" -> {
                    KeyPairGenerator generator = KeyPairGenerator.getInstance("EC", provider);
                    generator.initialize(new ECGenParameterSpec("secp256r1"));
                    KeyPair pair = generator.generateKeyPair();
                    byte[] data = "signed by a generated key".getBytes();
                    Signature signer = Signature.getInstance("SHA256withECDSA", provider);
                    signer.initSign(pair.getPrivate());
                    signer.update(data);
                    byte[] signature = signer.sign();
                    Signature verifier = Signature.getInstance("SHA256withECDSA");
                    verifier.initVerify(pair.getPublic());
                    verifier.update(data);
                    System.out.println("generated EC " + (verifier.verify(signature) ? "verified"
                        : "INVALID") + " " + hex(pair.getPublic().getEncoded()) + " "
                        + hex(signature));
                }
                default -> throw new IllegalArgumentException(args[i]);
            }
        }
    }

    static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    static void sign(Provider provider, KeyStore store, String alias, String algorithm)
            throws Exception {
        byte[] data = "signed by Java through SunPKCS11".getBytes();
        PrivateKey key = (PrivateKey) store.getKey(alias, null);
        Signature signer = Signature.getInstance(algorithm, provider);
        Signature verifier = Signature.getInstance(algorithm);
        if (algorithm.equals("RSASSA-PSS")) {
            PSSParameterSpec pss =
                new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1);
            signer.setParameter(pss);
            verifier.setParameter(pss);
        }
        signer.initSign(key);
        signer.update(data);
        byte[] signature = signer.sign();
        verifier.initVerify(store.getCertificate(alias).getPublicKey());
        verifier.update(data);
        System.out.println("signature " + alias + " " + algorithm + " "
            + (verifier.verify(signature) ? "verified" : "INVALID") + " " + hex(signature));
    }
}
