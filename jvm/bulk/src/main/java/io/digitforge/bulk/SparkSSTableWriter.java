package io.digitforge.bulk;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.function.Consumer;

import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

import org.apache.spark.SparkContext;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bulk writes for ingest: Spark tasks write SSTables (Cassandra's own writer, no CQL round trips), then the
 * node imports them whole. Called from Python through py4j (digitforge.bulk).
 */
public final class SparkSSTableWriter {
    private static final Logger LOG = LoggerFactory.getLogger(SparkSSTableWriter.class);
    private static final String BRIDGE = "io.digitforge.bulk.SSTableWriterBridge";
    private static final String[] IMPORT_SIGNATURE = {"java.util.Set", "boolean", "boolean", "boolean", "boolean",
            "boolean", "boolean", "boolean"};

    private SparkSSTableWriter() {}

    /** Bytes of one staged row: id int32, label int32 (-1: none), 784 pixel bytes; big-endian. */
    public static final int PIXELS = 784;
    public static final int RECORD_BYTES = 4 + 4 + PIXELS;

    /**
     * Writes the rows of staged record files (digitforge.bulk.stage_records) as SSTables: file i holds rows of
     * keyspace.tables[i], described by createTables[i] and inserts[i]. One Spark task per file, each into a
     * folder of its own, {@code outRoot/task-<stage>-<partition>-<attempt>/<keyspace>/<table>} (import reads
     * keyspace and table from the last two names). Plain RDD tasks: no query planning, no Parquet decoding,
     * no row objects. Returns the folders, one per file. The files and outRoot may be URLs of a Hadoop
     * filesystem (s3://, hdfs://: {@link Staging}): each task then writes into a local scratch folder and
     * copies its SSTables up to the same folder under outRoot.
     */
    public static String[] writeRecordFiles(SparkContext sc, String[] files, String[] tables, String[] createTables,
                                            String[] inserts, String keyspace, String cassandraJarDir,
                                            String outRoot) {
        List<String[]> work = new ArrayList<>();
        for (int i = 0; i < files.length; i++) work.add(new String[]{files[i], tables[i], createTables[i], inserts[i]});
        Staging.HadoopSettings hadoop = Staging.settingsFor(sc, files, outRoot);
        FlatMapFunction<Iterator<String[]>, String> writeFiles = items -> {
            List<String> folders = new ArrayList<>();
            while (items.hasNext()) {
                String[] item = items.next();
                folders.add(writeRecordFile(item[0], cassandraJarDir, outRoot, keyspace, item[1], item[2], item[3],
                        hadoop));
            }
            return folders.iterator();
        };
        List<String> folders = JavaSparkContext.fromSparkContext(sc)
                .parallelize(work, Math.max(1, work.size()))
                .mapPartitions(writeFiles)
                .collect();
        return folders.toArray(new String[0]);
    }

    static String writeRecordFile(String path, String cassandraJarDir, String outRoot, String keyspace,
                                  String table, String createTable, String insert,
                                  Staging.HadoopSettings hadoop) throws Exception {
        long started = System.nanoTime();
        ByteBuffer records = ByteBuffer.wrap(Staging.readAll(path, hadoop));
        if (records.capacity() % RECORD_BYTES != 0) {
            throw new IOException(path + ": " + records.capacity() + " bytes is not a whole number of "
                    + RECORD_BYTES + "-byte records");
        }
        TaskContext task = TaskContext.get();
        String taskName = task == null ? "driver" : String.format("task-%d-%d-%d", task.stageId(),
                task.partitionId(), task.attemptNumber());
        int count = records.capacity() / RECORD_BYTES;
        File local = Staging.localFile(outRoot);
        String written;
        if (local != null) {
            File folder = taskFolder(local, taskName, keyspace, table);
            writeSSTables(records, count, folder, cassandraJarDir, createTable, insert);
            written = folder.getAbsolutePath();
        } else {  // remote staging: written into a local scratch folder, copied up to outRoot, the scratch removed
            File scratch = Staging.localScratch();
            try {
                File folder = taskFolder(scratch, taskName, keyspace, table);
                writeSSTables(records, count, folder, cassandraJarDir, createTable, insert);
                written = Staging.join(outRoot, taskName, keyspace, table);
                Staging.upload(folder, written, hadoop);
            } finally {
                Staging.delete(scratch);
            }
        }
        LOG.info("{}.{}: {} rows of {} -> SSTables in {} ({} s)", keyspace, table, count, path, written,
                String.format("%.2f", (System.nanoTime() - started) / 1e9));
        return written;
    }

    private static File taskFolder(File root, String taskName, String keyspace, String table) throws IOException {
        File folder = new File(new File(new File(root, taskName), keyspace), table);
        if (!folder.mkdirs()) throw new IOException("cannot create " + folder + " (does it exist already?)");
        return folder;
    }

    /** count records as SSTables in folder, by Cassandra's writer in its own class loader (SSTableWriterBridge). */
    private static void writeSSTables(ByteBuffer records, int count, File folder, String cassandraJarDir,
                                      String createTable, String insert) throws Exception {
        ClassLoader cassandra = CassandraClassLoader.forJars(cassandraJarDir);
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(cassandra);  // Cassandra looks some things up through the context loader
        try {
            Object bridge = Class.forName(BRIDGE, true, cassandra)
                    .getConstructor(String.class, String.class, String.class)
                    .newInstance(folder.getAbsolutePath(), createTable, insert);
            @SuppressWarnings("unchecked")
            Consumer<Object[]> sink = (Consumer<Object[]>) bridge;
            try (AutoCloseable writeOnClose = (AutoCloseable) bridge) {
                for (int i = 0; i < count; i++) {
                    int at = i * RECORD_BYTES;
                    int label = records.getInt(at + 4);
                    ByteBuffer pixels = records.duplicate().position(at + 8).limit(at + RECORD_BYTES).slice();
                    sink.accept(new Object[]{records.getInt(at), label < 0 ? null : label, pixels});
                }
            }
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    private static volatile String[] jmxCredentials;  // {user, password}; null: the node checks no JMX login

    /**
     * The JMX login for every later call (a node started with JMX authentication, SECURE=1); null user: none.
     * Set once by the driver (digitforge.ingest.sstable_writer) from the credentials file, never from argv.
     */
    public static void useJmxCredentials(String user, String password) {
        jmxCredentials = user == null ? null : new String[]{user, password == null ? "" : password};
    }

    /** A JMX connection to the node, with the login set by {@link #useJmxCredentials}. */
    static JMXConnector connect(String host, int jmxPort) throws IOException {
        JMXServiceURL url = new JMXServiceURL("service:jmx:rmi:///jndi/rmi://" + host + ":" + jmxPort + "/jmxrmi");
        String[] login = jmxCredentials;
        return login == null ? JMXConnectorFactory.connect(url)
                : JMXConnectorFactory.connect(url, java.util.Map.of(JMXConnector.CREDENTIALS, login));
    }

    /**
     * Asks the node (JMX, like {@code nodetool import}) to take in the SSTables of these folders: it checks
     * them and the tokens they hold, then moves them into its data directory. Returns the folders it failed
     * to import (empty when all went in).
     */
    @SuppressWarnings("unchecked")
    public static String[] importSSTables(String host, int jmxPort, String keyspace, String table,
                                          String[] folders) throws Exception {
        try (JMXConnector connector = connect(host, jmxPort)) {
            MBeanServerConnection node = connector.getMBeanServerConnection();
            ObjectName tableBean = new ObjectName("org.apache.cassandra.db:type=Tables,keyspace=" + keyspace
                    + ",table=" + table);
            Object failed = node.invoke(tableBean, "importNewSSTables", new Object[]{
                    new HashSet<>(Arrays.asList(folders)),
                    false,  // resetLevel
                    false,  // clearRepaired
                    true,   // verifySSTables
                    true,   // verifyTokens: every row belongs on this node
                    true,   // invalidateCaches
                    false,  // extendedVerify
                    false,  // copyData: move the files (same file system), no second copy
            }, IMPORT_SIGNATURE);
            return ((List<String>) failed).toArray(new String[0]);
        }
    }

    private static final String STORAGE_SERVICE = "org.apache.cassandra.db:type=StorageService";

    /**
     * Has the node snapshot these tables ("keyspace.table" each) under {@code tag}, as {@code nodetool
     * snapshot} does: it flushes them and hard-links their SSTables under each table's snapshots/tag folder.
     * Ingest takes one before it changes any table, so that a failed import can put every table back.
     */
    public static void snapshotTables(String host, int jmxPort, String tag, String[] tables) throws Exception {
        try (JMXConnector connector = connect(host, jmxPort)) {
            connector.getMBeanServerConnection().invoke(new ObjectName(STORAGE_SERVICE), "takeSnapshot",
                    new Object[]{tag, new java.util.HashMap<String, String>(), tables},
                    new String[]{"java.lang.String", "java.util.Map", "[Ljava.lang.String;"});
        }
    }

    /** Removes the snapshot {@code tag} of these keyspaces (as {@code nodetool clearsnapshot -t tag}). */
    public static void clearSnapshot(String host, int jmxPort, String tag, String[] keyspaces) throws Exception {
        try (JMXConnector connector = connect(host, jmxPort)) {
            connector.getMBeanServerConnection().invoke(new ObjectName(STORAGE_SERVICE), "clearSnapshot",
                    new Object[]{tag, keyspaces}, new String[]{"java.lang.String", "[Ljava.lang.String;"});
        }
    }

    /** The node's data directories (data_file_directories), where its tables' snapshot folders are. */
    public static String[] dataFileLocations(String host, int jmxPort) throws Exception {
        try (JMXConnector connector = connect(host, jmxPort)) {
            return (String[]) connector.getMBeanServerConnection().getAttribute(new ObjectName(STORAGE_SERVICE),
                    "AllDataFileLocations");
        }
    }
}
