// A SunPKCS11 host: loads the module from a provider configuration, lists the KeyStore's
// aliases, signs with each requested key and algorithm and verifies in Java with the
// certificate's public key. Prints one line per fact, for the test to check.
//   java P11Java <provider.cfg> <pin> [<alias> <algorithm>]...
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;

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
        byte[] data = "signed by Java through SunPKCS11".getBytes();
        for (int i = 2; i + 1 < args.length; i += 2) {
            String alias = args[i], algorithm = args[i + 1];
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
                + (verifier.verify(signature) ? "verified" : "INVALID") + " "
                + HexFormat.of().formatHex(signature));
        }
    }
}
