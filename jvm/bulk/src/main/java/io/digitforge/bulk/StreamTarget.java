package io.digitforge.bulk;

import java.io.Serializable;
import java.util.HashMap;
import java.util.Map;

/**
 * Where SSTables are streamed to: the cluster's initial hosts and ports, and how to log in. Immutable; the
 * {@code with*} methods return a changed copy. Serializable: it travels to the executors with the tasks.
 *
 * <p>The loader reads the ring and the schema from an initial host's native port, then opens the storage
 * (internode) port of every replica it streams to: both must be reachable from where the streaming runs.
 *
 * <pre>{@code
 * StreamTarget.of("10.0.0.1,10.0.0.2", 9042, 7000)
 *     .withCredentials("loader", "secret")             // PasswordAuthenticator
 *     .withTruststore("/etc/ssl/ts.jks", "changeit")   // native-protocol TLS (client_encryption_options)
 *     .withConnectionsPerHost(2)
 *     .withThrottleMebibytes(100);                     // MiB/s per JVM, 0 = no limit
 * }</pre>
 */
public final class StreamTarget implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String hosts;
    private final int nativePort;
    private final int storagePort;
    private final String username;
    private final String password;
    private final String truststore;
    private final String truststorePassword;
    private final String keystore;
    private final String keystorePassword;
    private final int connectionsPerHost;
    private final int throttleMebibytes;

    private StreamTarget(String hosts, int nativePort, int storagePort, String username, String password,
                         String truststore, String truststorePassword, String keystore, String keystorePassword,
                         int connectionsPerHost, int throttleMebibytes) {
        if (hosts == null || hosts.isBlank()) throw new IllegalArgumentException("StreamTarget: no initial hosts");
        if (connectionsPerHost < 1) throw new IllegalArgumentException("connectionsPerHost must be >= 1, got " + connectionsPerHost);
        if (throttleMebibytes < 0) throw new IllegalArgumentException("throttleMebibytes must be >= 0, got " + throttleMebibytes);
        this.hosts = hosts;
        this.nativePort = nativePort;
        this.storagePort = storagePort;
        this.username = username;
        this.password = password;
        this.truststore = truststore;
        this.truststorePassword = truststorePassword;
        this.keystore = keystore;
        this.keystorePassword = keystorePassword;
        this.connectionsPerHost = connectionsPerHost;
        this.throttleMebibytes = throttleMebibytes;
    }

    /** @param hosts initial hosts, comma-separated (names or addresses; one is enough, more survive one down) */
    public static StreamTarget of(String hosts, int nativePort, int storagePort) {
        return new StreamTarget(hosts, nativePort, storagePort, null, null, null, null, null, null, 1, 0);
    }

    /** Log in with a username and password (null username: no authentication). */
    public StreamTarget withCredentials(String username, String password) {
        return new StreamTarget(hosts, nativePort, storagePort, username, password, truststore, truststorePassword,
                keystore, keystorePassword, connectionsPerHost, throttleMebibytes);
    }

    /** TLS on the native connection, trusting the certificates of this truststore (JKS; null path: no TLS). */
    public StreamTarget withTruststore(String path, String password) {
        return new StreamTarget(hosts, nativePort, storagePort, username, this.password, path, password, keystore,
                keystorePassword, connectionsPerHost, throttleMebibytes);
    }

    /** A client certificate for the native TLS connection, where the cluster requires one (or where Cassandra's
     *  SSL factory insists on a keystore). */
    public StreamTarget withKeystore(String path, String password) {
        return new StreamTarget(hosts, nativePort, storagePort, username, this.password, truststore,
                truststorePassword, path, password, connectionsPerHost, throttleMebibytes);
    }

    /** Parallel streaming connections to each replica (sstableloader's --connections-per-host). */
    public StreamTarget withConnectionsPerHost(int n) {
        return new StreamTarget(hosts, nativePort, storagePort, username, password, truststore, truststorePassword,
                keystore, keystorePassword, n, throttleMebibytes);
    }

    /** Outbound streaming limit in MiB/s, for all streams of one JVM together (Cassandra's limiter is global); 0: none. */
    public StreamTarget withThrottleMebibytes(int mebibytesPerSecond) {
        return new StreamTarget(hosts, nativePort, storagePort, username, password, truststore, truststorePassword,
                keystore, keystorePassword, connectionsPerHost, mebibytesPerSecond);
    }

    public String hosts() { return hosts; }
    public int nativePort() { return nativePort; }
    public int storagePort() { return storagePort; }

    /** The form SSTableStreamBridge takes: JDK types only, across the class loaders. */
    Map<String, String> toMap() {
        Map<String, String> m = new HashMap<>();
        m.put("hosts", hosts);
        m.put("nativePort", Integer.toString(nativePort));
        m.put("storagePort", Integer.toString(storagePort));
        m.put("connectionsPerHost", Integer.toString(connectionsPerHost));
        m.put("throttleMebibytes", Integer.toString(throttleMebibytes));
        if (username != null) {
            m.put("username", username);
            m.put("password", password);
        }
        if (truststore != null) {
            m.put("truststore", truststore);
            m.put("truststorePassword", truststorePassword);
        }
        if (keystore != null) {
            m.put("keystore", keystore);
            m.put("keystorePassword", keystorePassword);
        }
        return m;
    }

    @Override
    public String toString() {  // never the passwords
        return String.format("StreamTarget(hosts=%s, native port %d, storage port %d%s%s, %d connection(s) per host%s)",
                hosts, nativePort, storagePort, username == null ? "" : ", user " + username,
                truststore == null ? "" : ", TLS truststore " + truststore, connectionsPerHost,
                throttleMebibytes == 0 ? "" : ", " + throttleMebibytes + " MiB/s");
    }
}
