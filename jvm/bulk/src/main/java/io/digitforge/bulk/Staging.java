package io.digitforge.bulk;

import java.io.File;
import java.io.IOException;
import java.io.Serializable;
import java.net.URI;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.commons.io.FileUtils;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkContext;

/**
 * The ingest staging area (ingest.staging_dir) as a location: a local path (or file:// URL), or a URL of any
 * Hadoop filesystem the executors reach (s3://, hdfs://, ...), so that executors with no shared disk can still
 * exchange the staged rows and SSTables. Cassandra's writer and bulk loader take local folders only: a task
 * writes its SSTables into a local temporary folder and copies them up, and a streaming task copies a folder
 * down into one (named {@code <keyspace>/<table>}, as the loader wants) before it streams it.
 */
final class Staging {
    private Staging() {}

    /** The driver's Hadoop settings (s3a endpoint, credentials provider, ...), carried into the tasks. */
    static final class HadoopSettings implements Serializable {
        private static final long serialVersionUID = 1L;
        private final HashMap<String, String> entries = new HashMap<>();

        HadoopSettings(Configuration conf) {
            for (Map.Entry<String, String> e : conf) entries.put(e.getKey(), e.getValue());
        }

        /** A new (uncached) filesystem for a location; the caller closes it. */
        FileSystem open(Path location) throws IOException {
            Configuration conf = new Configuration(false);
            entries.forEach(conf::set);
            return FileSystem.newInstance(location.toUri(), conf);
        }
    }

    /** settingsFor the record files and the folder the SSTables go under. */
    static HadoopSettings settingsFor(SparkContext sc, String[] files, String outRoot) {
        List<String> locations = new ArrayList<>(Arrays.asList(files));
        locations.add(outRoot);
        return settingsFor(sc, locations);
    }

    /** The driver's Hadoop settings when a location is remote (they travel with every task), else null. */
    static HadoopSettings settingsFor(SparkContext sc, Iterable<String> locations) {
        for (String location : locations) {
            if (localFile(location) == null) return new HadoopSettings(sc.hadoopConfiguration());
        }
        return null;
    }

    /** The local file of a plain path or file:// URL; null for a remote URL. */
    static File localFile(String location) {
        if (!location.contains("://")) return new File(location);
        return location.startsWith("file://") ? new File(URI.create(location)) : null;
    }

    /** A location inside another (a URL stays a URL). */
    static String join(String location, String... names) {
        StringBuilder s = new StringBuilder(location.replaceAll("/+$", ""));
        for (String name : names) s.append('/').append(name);
        return s.toString();
    }

    /** A whole file's bytes, local or remote. */
    static byte[] readAll(String location, HadoopSettings hadoop) throws IOException {
        File local = localFile(location);
        if (local != null) return Files.readAllBytes(local.toPath());
        Path path = new Path(location);
        try (FileSystem fs = hadoop.open(path)) {
            long length = fs.getFileStatus(path).getLen();
            if (length > Integer.MAX_VALUE - 8) throw new IOException(location + ": " + length + " bytes is too large to stage");
            byte[] bytes = new byte[(int) length];
            try (FSDataInputStream in = fs.open(path)) {
                in.readFully(0, bytes);
            }
            return bytes;
        }
    }

    /** A new local temporary folder for a task's SSTables (the JVM's temp dir: the container's on YARN). */
    static File localScratch() throws IOException {
        return Files.createTempDirectory("digitforge-sstables-").toFile();
    }

    /** Copies a local folder's files into {@code location} (created), then removes the local copies. */
    static void upload(File folder, String location, HadoopSettings hadoop) throws IOException {
        Path target = new Path(location);
        try (FileSystem fs = hadoop.open(target)) {
            fs.mkdirs(target);
            File[] files = folder.listFiles();
            if (files == null) throw new IOException(folder + ": cannot list the SSTables to copy to " + location);
            for (File f : files) fs.copyFromLocalFile(true, true, new Path(f.toURI()), new Path(target, f.getName()));
        }
    }

    /** Copies the files of a remote folder {@code .../<keyspace>/<table>} into {@code root/<keyspace>/<table>}. */
    static File download(String location, File root, HadoopSettings hadoop) throws IOException {
        Path source = new Path(location);
        File folder = new File(new File(root, source.getParent().getName()), source.getName());
        if (!folder.mkdirs()) throw new IOException("cannot create " + folder);
        try (FileSystem fs = hadoop.open(source)) {
            for (FileStatus s : fs.listStatus(source)) {
                if (s.isFile()) {
                    fs.copyToLocalFile(false, s.getPath(), new Path(new File(folder, s.getPath().getName()).toURI()), true);
                }
            }
        }
        return folder;
    }

    /** Removes a task's local scratch folder and what it holds (commons-io, on Spark's class path). */
    static void delete(File folder) {
        FileUtils.deleteQuietly(folder);
    }
}
