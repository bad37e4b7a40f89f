// A Java SunPKCS11 application of p11fast, driven by tests/module/test_java_keystore.py.
//
//   java P11KeyStoreHost.java <sunpkcs11.cfg> <pin> store
//       Reads commands from stdin, one a line, and answers each with one line on stdout:
//         GENERATE <name> RSA <bits> | GENERATE <name> EC <curve>  -> PUBLIC <base64 SPKI DER>
//         SIGN <name> <algorithm> <base64 data>                      -> SIGNATURE <base64>
//         STORE <alias> <name> <base64 cert DER>...                   -> STORED <alias>
//       (the certificates are made by the test: Java has no public API to create one).
//   java P11KeyStoreHost.java <sunpkcs11.cfg> <pin> use <base64 data> <alias>=<algorithm>...
//       Loads the KeyStore afresh and prints ALIASES, then for each alias its CHAIN and the
//       SIGNATURE of the data made with the entry's private key.
// Errors end the process with a stack trace on stderr and a non-zero status.

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public class P11KeyStoreHost {
    private static final Base64.Encoder B64 = Base64.getEncoder();
    private static final Base64.Decoder UNB64 = Base64.getDecoder();

    public static void main(String[] args) throws Exception {
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        KeyStore keyStore = KeyStore.getInstance("PKCS11", provider);
        keyStore.load(null, args[1].toCharArray());
        if (args[2].equals("store")) {
            store(provider, keyStore);
        } else {
            use(provider, keyStore, UNB64.decode(args[3]), List.of(args).subList(4, args.length));
        }
    }

    static void store(Provider provider, KeyStore keyStore) throws Exception {
        Map<String, KeyPair> pairs = new HashMap<>();
        CertificateFactory x509 = CertificateFactory.getInstance("X.509");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            String[] word = line.split(" ");
            switch (word[0]) {
                case "GENERATE": {
                    KeyPairGenerator generator = KeyPairGenerator.getInstance(word[2], provider);
                    if (word[2].equals("EC")) {
                        generator.initialize(new ECGenParameterSpec(word[3]));
                    } else {
                        generator.initialize(Integer.parseInt(word[3]));
                    }
                    KeyPair pair = generator.generateKeyPair();
                    pairs.put(word[1], pair);
                    reply("PUBLIC " + B64.encodeToString(pair.getPublic().getEncoded()));
                    break;
                }
                case "SIGN":
                    reply("SIGNATURE " + sign(provider, word[2], pairs.get(word[1]).getPrivate(),
                                              UNB64.decode(word[3])));
                    break;
                case "STORE": {
                    List<X509Certificate> chain = new ArrayList<>();
                    for (int i = 3; i < word.length; i++) {
                        chain.add((X509Certificate) x509.generateCertificate(
                                new ByteArrayInputStream(UNB64.decode(word[i]))));
                    }
                    keyStore.setKeyEntry(word[1], pairs.get(word[2]).getPrivate(), null,
                                         chain.toArray(new X509Certificate[0]));
                    reply("STORED " + word[1]);
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown command: " + line);
            }
        }
    }

    static void use(Provider provider, KeyStore keyStore, byte[] data, List<String> uses)
            throws Exception {
        List<String> aliases = Collections.list(keyStore.aliases());
        Collections.sort(aliases);
        reply("ALIASES " + String.join(" ", aliases));
        for (String use : uses) {
            String alias = use.split("=")[0];
            StringBuilder chain = new StringBuilder("CHAIN " + alias);
            for (Certificate cert : keyStore.getCertificateChain(alias)) {
                chain.append(' ').append(B64.encodeToString(cert.getEncoded()));
            }
            reply(chain.toString());
            PrivateKey key = (PrivateKey) keyStore.getKey(alias, null);
            reply("SIGNATURE " + alias + " " + sign(provider, use.split("=")[1], key, data));
        }
    }

    static String sign(Provider provider, String algorithm, PrivateKey key, byte[] data)
            throws Exception {
        Signature signature = Signature.getInstance(algorithm, provider);
        signature.initSign(key);
        signature.update(data);
        return B64.encodeToString(signature.sign());
    }

    static void reply(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
