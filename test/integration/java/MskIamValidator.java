/*
 * A Kafka broker-side check of AWS MSK IAM tokens, for
 * test_kafka_msk_iam.py: the broker's SASL OAUTHBEARER listener runs it
 * (listener.name.<l>.oauthbearer.sasl.server.callback.handler.class).
 *
 * It does what MSK does with an IAM token, written independently of weir
 * (Java's own HMAC-SHA256, URI and base64): decode the base64url token to
 * the presigned URL, check the host, action, algorithm, credential scope,
 * signed headers and the time window, rebuild the SigV4 canonical request
 * from the URL's parameters (all but X-Amz-Signature and User-Agent) and
 * compare the signature computed with the secret from the JAAS options
 * (keyId, secret, region). It prints one line per token to the broker's
 * log: "MSK-IAM-ACCEPT principal=... user-agent=..." or
 * "MSK-IAM-REJECT <why>".
 */
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerExtensionsValidatorCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

public class MskIamValidator implements AuthenticateCallbackHandler {
    private String keyId, secret, region;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        Map<String, ?> o = jaas.get(0).getOptions();
        keyId = (String) o.get("keyId");
        secret = (String) o.get("secret");
        region = (String) o.get("region");
    }

    @Override
    public void close() {}

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback cb : callbacks) {
            if (cb instanceof OAuthBearerValidatorCallback) {
                OAuthBearerValidatorCallback v = (OAuthBearerValidatorCallback) cb;
                try {
                    v.token(validate(v.tokenValue()));
                } catch (Exception e) {
                    System.err.println("MSK-IAM-REJECT " + e.getMessage());
                    System.err.flush();
                    v.error("invalid_token", null, null);
                }
            } else if (!(cb instanceof OAuthBearerExtensionsValidatorCallback)) {
                throw new UnsupportedCallbackException(cb);
            }
        }
    }

    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b)
            s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }

    private static byte[] sha256(String s) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] hmac(byte[] key, String msg) throws Exception {
        Mac m = Mac.getInstance("HmacSHA256");
        m.init(new SecretKeySpec(key, "HmacSHA256"));
        return m.doFinal(msg.getBytes(StandardCharsets.UTF_8));
    }

    /* SigV4's URI encoding: everything but A-Za-z0-9-_.~ */
    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20").replace("*", "%2A").replace("%7E", "~");
    }

    private static void need(boolean ok, String why) throws Exception {
        if (!ok)
            throw new Exception(why);
    }

    private OAuthBearerToken validate(String token) throws Exception {
        String url = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
        URI u = new URI(url);
        String host = "kafka." + region + ".amazonaws.com";
        need("https".equals(u.getScheme()) && host.equals(u.getHost()) && "/".equals(u.getRawPath()),
             "not a presigned URL of " + host + ": " + url);
        Map<String, String> q = new HashMap<>();
        for (String kv : u.getRawQuery().split("&")) {
            int eq = kv.indexOf('=');
            need(eq > 0, "bad query parameter " + kv);
            q.put(URLDecoder.decode(kv.substring(0, eq), StandardCharsets.UTF_8),
                  URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
        }
        need("kafka-cluster:Connect".equals(q.get("Action")), "Action is " + q.get("Action"));
        need("AWS4-HMAC-SHA256".equals(q.get("X-Amz-Algorithm")), "algorithm " + q.get("X-Amz-Algorithm"));
        need("host".equals(q.get("X-Amz-SignedHeaders")), "signed headers " + q.get("X-Amz-SignedHeaders"));
        String amzDate = q.get("X-Amz-Date");
        need(amzDate != null && q.get("X-Amz-Expires") != null, "no X-Amz-Date or X-Amz-Expires");
        long signed = LocalDateTime.parse(amzDate, DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'"))
                          .toEpochSecond(ZoneOffset.UTC);
        long expires = Long.parseLong(q.get("X-Amz-Expires")), now = System.currentTimeMillis() / 1000;
        need(now >= signed - 300 && now <= signed + expires, "outside its time window: signed " + amzDate);
        String scope = amzDate.substring(0, 8) + "/" + region + "/kafka-cluster/aws4_request";
        need((keyId + "/" + scope).equals(q.get("X-Amz-Credential")), "credential " + q.get("X-Amz-Credential"));

        TreeMap<String, String> canon = new TreeMap<>();
        for (Map.Entry<String, String> e : q.entrySet())
            if (!e.getKey().equals("X-Amz-Signature") && !e.getKey().equals("User-Agent"))
                canon.put(enc(e.getKey()), enc(e.getValue()));
        StringBuilder cq = new StringBuilder();
        for (Map.Entry<String, String> e : canon.entrySet())
            cq.append(cq.length() > 0 ? "&" : "").append(e.getKey()).append('=').append(e.getValue());
        String creq = "GET\n/\n" + cq + "\nhost:" + host + "\n\nhost\n" + hex(sha256(""));
        String sts = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex(sha256(creq));
        byte[] k = hmac(("AWS4" + secret).getBytes(StandardCharsets.UTF_8), amzDate.substring(0, 8));
        k = hmac(hmac(hmac(k, region), "kafka-cluster"), "aws4_request");
        String want = hex(hmac(k, sts)), got = String.valueOf(q.get("X-Amz-Signature"));
        need(MessageDigest.isEqual(want.getBytes(StandardCharsets.US_ASCII), got.getBytes(StandardCharsets.US_ASCII)),
             "signature mismatch for " + q.get("X-Amz-Credential"));
        System.err.println("MSK-IAM-ACCEPT principal=" + keyId + " user-agent=" + q.get("User-Agent") + " expires="
                           + expires);
        System.err.flush();
        final long start = signed * 1000, end = (signed + expires) * 1000;
        final String principal = keyId;
        return new OAuthBearerToken() {
            public String value() { return token; }
            public Set<String> scope() { return Collections.emptySet(); }
            public long lifetimeMs() { return end; }
            public String principalName() { return principal; }
            public Long startTimeMs() { return start; }
        };
    }
}
