package io.digitforge.bulk;

import java.io.File;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A class loader over cassandra-all's jars and this jar, whose parent is the JDK's platform loader: Cassandra
 * runs inside an executor without seeing Spark's classes, and Spark never sees Cassandra's. One per JVM and
 * jar folder, so Cassandra's client-mode start-up is paid once per executor.
 */
final class CassandraClassLoader {
    private static final Map<String, ClassLoader> LOADERS = new ConcurrentHashMap<>();

    private CassandraClassLoader() {}

    static ClassLoader forJars(String cassandraJarDir) {
        return LOADERS.computeIfAbsent(cassandraJarDir, CassandraClassLoader::create);
    }

    private static ClassLoader create(String cassandraJarDir) {
        File[] jars = new File(cassandraJarDir).listFiles((d, name) -> name.endsWith(".jar"));
        if (jars == null || jars.length == 0) {
            throw new IllegalStateException("no Cassandra jars in " + cassandraJarDir + ": run `make jars` "
                    + "(on a cluster: the same folder on every executor, or set ingest.cassandra_jars)");
        }
        Arrays.sort(jars);
        List<URL> urls = new ArrayList<>();
        try {
            urls.add(CassandraClassLoader.class.getProtectionDomain().getCodeSource().getLocation());
            for (File jar : jars) urls.add(jar.toURI().toURL());
        } catch (MalformedURLException e) {
            throw new IllegalStateException(e);
        }
        return new URLClassLoader("digitforge-cassandra", urls.toArray(new URL[0]), ClassLoader.getPlatformClassLoader());
    }
}
