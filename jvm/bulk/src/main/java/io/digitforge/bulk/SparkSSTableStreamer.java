package io.digitforge.bulk;

import java.io.File;
import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bulk writes to a remote cluster: SSTables written by {@link SparkSSTableWriter} are streamed to every replica
 * by Cassandra's own bulk loader ({@code BulkLoader}, what sstableloader runs), from the JVM that holds them.
 * Called from Python through py4j (digitforge.bulk). Three ways in:
 * <ul>
 * <li>{@link #writeAndStreamRecordFiles}: one Spark job, each task writes its SSTables, then streams them at
 *     once (streams run in parallel, the files never leave the executor that wrote them; but rows of finished
 *     tasks reach the table while other tasks still write);</li>
 * <li>{@link SparkSSTableWriter#writeRecordFiles} then {@link #streamFolders}: every task writes first, then a
 *     second job streams (nothing reaches the table unless every write succeeded; each folder must be readable
 *     where its stream task runs: local mode, one executor host, or an out_root on shared storage);</li>
 * <li>{@link #stream}: one folder from the calling JVM (the driver).</li>
 * </ul>
 * A stream that fails part way leaves the rows it sent on the replicas that took them: they are upserts, so
 * streaming the same folders again (or re-running the ingest) makes every replica whole without doubling rows.
 */
public final class SparkSSTableStreamer {
    private static final Logger LOG = LoggerFactory.getLogger(SparkSSTableStreamer.class);
    private static final String BRIDGE = "io.digitforge.bulk.SSTableStreamBridge";

    private SparkSSTableStreamer() {}

    /**
     * Streams one folder of SSTables ({@code .../<keyspace>/<table>/}) to every replica, from this JVM (driver
     * or executor), through the Cassandra class loader over the jars in cassandraJarDir.
     *
     * @throws SSTableStreamException naming the table, the folder and which host failed how (no initial host
     *         answering, a replica's storage port refused, a table missing on the cluster, a bad login)
     */
    public static StreamResult stream(String folder, String cassandraJarDir, StreamTarget target)
            throws SSTableStreamException {
        return stream(folder, -1, cassandraJarDir, target);
    }

    static StreamResult stream(String folder, long rows, String cassandraJarDir, StreamTarget target)
            throws SSTableStreamException {
        StreamResult r = streamAll(List.of(folder), cassandraJarDir, target).get(0);
        return rows < 0 ? r : r.withRows(rows);
    }

    /**
     * Streams the folders side by side from this JVM: the ring is read once per keyspace and every folder's
     * stream runs at once (SSTableStreamBridge.streamAll). All must succeed; the first failure is thrown.
     */
    static List<StreamResult> streamAll(List<String> folders, String cassandraJarDir, StreamTarget target)
            throws SSTableStreamException {
        long started = System.nanoTime();
        ClassLoader cassandra = CassandraClassLoader.forJars(cassandraJarDir);
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(cassandra);  // as for the writer: Cassandra looks things up through it
        List<Map<String, long[]>> sent;
        try {
            @SuppressWarnings("unchecked")
            List<Map<String, long[]>> result = (List<Map<String, long[]>>) Class.forName(BRIDGE, true, cassandra)
                    .getMethod("streamAll", List.class, Map.class)
                    .invoke(null, folders, target.toMap());
            sent = result;
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            // The bridge's IOExceptions carry the whole story; anything else is a Cassandra-loader class the
            // driver could not deserialise: keep its text only.
            throw new SSTableStreamException(cause instanceof java.io.IOException ? cause.getMessage()
                    : String.join(", ", folders) + ": streaming to " + target + " failed: " + cause);
        } catch (ReflectiveOperationException e) {
            throw new SSTableStreamException(String.join(", ", folders) + ": cannot load " + BRIDGE + " from "
                    + cassandraJarDir + ": " + e);
        } finally {
            thread.setContextClassLoader(previous);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        List<StreamResult> results = new ArrayList<>();
        for (int i = 0; i < folders.size(); i++) {
            StreamResult result = new StreamResult(folders.get(i), -1, sent.get(i), seconds);
            LOG.info("streamed {}", result);
            results.add(result);
        }
        return results;
    }

    /**
     * The second stage after SparkSSTableWriter.writeRecordFiles: the folders spread over one task per core
     * (no more), each task streaming its share side by side. Per-folder setup (reading the ring and the schema)
     * costs more than the streaming of an MNIST-sized folder, so fewer tasks with more folders each win.
     */
    public static StreamResult[] streamFolders(SparkContext sc, String[] folders, String cassandraJarDir,
                                               StreamTarget target) {
        Staging.HadoopSettings hadoop = Staging.settingsFor(sc, Arrays.asList(folders));
        FlatMapFunction<Iterator<String>, StreamResult> streamShare = items -> {
            List<String> share = new ArrayList<>();
            items.forEachRemaining(share::add);
            return share.isEmpty() ? new ArrayList<StreamResult>().iterator()
                    : streamStaged(share, cassandraJarDir, target, hadoop).iterator();
        };
        int tasks = Math.max(1, Math.min(folders.length, sc.defaultParallelism()));
        return JavaSparkContext.fromSparkContext(sc)
                .parallelize(Arrays.asList(folders), tasks)
                .mapPartitions(streamShare)
                .collect()
                .toArray(new StreamResult[0]);
    }

    /**
     * streamAll for staged folders, local or remote ({@link Staging}): remote ones are copied into a local
     * scratch folder first (the loader reads local files only) and it is removed afterwards; each result names
     * the staged folder.
     */
    static List<StreamResult> streamStaged(List<String> folders, String cassandraJarDir, StreamTarget target,
                                           Staging.HadoopSettings hadoop) throws Exception {
        if (hadoop == null) return streamAll(folders, cassandraJarDir, target);
        File scratch = Staging.localScratch();
        try {
            List<String> local = new ArrayList<>();
            for (String folder : folders) {
                local.add(Staging.localFile(folder) != null ? folder
                        : Staging.download(folder, new File(scratch, "f" + local.size()), hadoop).getPath());
            }
            List<StreamResult> results = new ArrayList<>();
            List<StreamResult> sent = streamAll(local, cassandraJarDir, target);
            for (int i = 0; i < folders.size(); i++) results.add(sent.get(i).withFolder(folders.get(i)));
            return results;
        } finally {
            Staging.delete(scratch);
        }
    }

    /**
     * As SparkSSTableWriter.writeRecordFiles (same arguments, same folders), but each task streams its folder
     * to the cluster right after writing it. Returns one result per file, with the rows it wrote. Local
     * files and outRoot only: the task streams the folder it just wrote.
     */
    public static StreamResult[] writeAndStreamRecordFiles(SparkContext sc, String[] files, String[] tables,
                                                           String[] createTables, String[] inserts, String keyspace,
                                                           String cassandraJarDir, String outRoot,
                                                           StreamTarget target) {
        if (Staging.settingsFor(sc, files, outRoot) != null) {
            throw new IllegalArgumentException("writeAndStreamRecordFiles takes local files and a local outRoot; "
                    + "for remote staging use writeRecordFiles, then streamFolders");
        }
        List<String[]> work = new ArrayList<>();
        for (int i = 0; i < files.length; i++) work.add(new String[]{files[i], tables[i], createTables[i], inserts[i]});
        FlatMapFunction<Iterator<String[]>, StreamResult> writeThenStream = items -> {
            List<StreamResult> results = new ArrayList<>();
            while (items.hasNext()) {
                String[] item = items.next();
                String folder = SparkSSTableWriter.writeRecordFile(item[0], cassandraJarDir, outRoot, keyspace,
                        item[1], item[2], item[3], null);
                long rows = new File(item[0]).length() / SparkSSTableWriter.RECORD_BYTES;
                results.add(stream(folder, rows, cassandraJarDir, target));
            }
            return results.iterator();
        };
        return JavaSparkContext.fromSparkContext(sc)
                .parallelize(work, Math.max(1, work.size()))
                .mapPartitions(writeThenStream)
                .collect()
                .toArray(new StreamResult[0]);
    }
}
