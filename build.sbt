// The JVM side of digitforge: the one place JVM versions are named.
//   sparkJars     -> build/jars/spark      spark-cassandra-connector and its runtime deps (for --jars;
//                                          Maven Central has no 3.5.x assembly jar, so the pieces are staged)
//   cassandraJars -> build/jars/cassandra  a Cassandra 5.0 server and its dependencies (for `make cassandra-up`,
//                                          and for writing SSTables in Spark executors)
//   s3Jars        -> build/jars/s3         hadoop-aws at the Hadoop version pyspark ships, and its AWS SDK bundle: the
//                                          s3a filesystem Spark writes snapshots with when a storage URL is s3://
//                                          (added to spark.jars only then, core/spark.py)
//   bulkWriter    -> build/jars/digitforge digitforge-bulk.jar (jvm/bulk): Spark tasks write SSTables for ingest
//                                          and stream them to remote replicas (BulkLoader); compiled against the
//                                          venv's pyspark jars (`make setup` first)
//   sqlServerJars -> (nothing staged)      checks that the venv's pyspark ships Spark's Thrift JDBC/ODBC server at
//                                          its own version and Hive's BeeLine/JDBC driver (scripts/sql-server.sh)
// `make jars` runs `sbt stageJars`.

ThisBuild / scalaVersion := "2.12.18"
ThisBuild / organization := "io.digitforge"

val connectorVersion = "3.5.1"
val cassandraVersion = "5.0.6"

val stage = taskKey[File]("Copy this project's runtime jars into build/jars/<name>")

def stageSettings(dirName: String) = Seq(
  autoScalaLibrary := false,
  crossPaths := false,
  stage := {
    val out = (ThisBuild / baseDirectory).value / "build" / "jars" / dirName
    IO.delete(out)
    IO.createDirectory(out)
    val jars = (Runtime / managedClasspath).value.files.filter(_.getName.endsWith(".jar"))
    jars.foreach(j => IO.copyFile(j, out / j.getName))
    streams.value.log.info(s"${jars.size} jars -> $out")
    out
  }
)

lazy val sparkJars = (project in file("build/sbt/spark"))
  .settings(stageSettings("spark"))
  .settings(
    // Spark ships Scala and slf4j itself; two copies on one classpath break it.
    libraryDependencies += ("com.datastax.spark" % "spark-cassandra-connector_2.12" % connectorVersion)
      .exclude("org.scala-lang", "scala-library")
      .exclude("org.scala-lang", "scala-reflect")
      .exclude("org.slf4j", "slf4j-api")
  )

lazy val cassandraJars = (project in file("build/sbt/cassandra"))
  .settings(stageSettings("cassandra"))
  .settings(
    libraryDependencies += "org.apache.cassandra" % "cassandra-all" % cassandraVersion
  )

// Spark 3.5's pyspark ships hadoop-client-api/runtime 3.3.4: hadoop-aws must be the same version (its
// hadoop-common is `provided`, so only the AWS SDK bundle comes with it).
val hadoopVersion = "3.3.4"

lazy val s3Jars = (project in file("build/sbt/s3"))
  .settings(stageSettings("s3"))
  .settings(
    libraryDependencies += ("org.apache.hadoop" % "hadoop-aws" % hadoopVersion)
      .exclude("org.wildfly.openssl", "wildfly-openssl")
  )

// The venv's pyspark jars: the same Spark the jobs run on, without a second download of Spark from Maven.
def pysparkJars(base: File): Seq[File] = {
  val dir = sys.props.get("digitforge.pysparkJars").map(file)
    .getOrElse(((base / ".venv" / "lib") * "python3*" / "site-packages" / "pyspark" / "jars").get.headOption
      .getOrElse(sys.error("no pyspark jars under .venv: run `make setup` first, or pass -Ddigitforge.pysparkJars=DIR")))
  (dir * "*.jar").get
}

lazy val bulkWriter = (project in file("jvm/bulk"))
  .settings(
    name := "digitforge-bulk",
    autoScalaLibrary := false,
    crossPaths := false,
    // Provided: at run time cassandra-all comes from build/jars/cassandra, in a class loader of its own.
    libraryDependencies += "org.apache.cassandra" % "cassandra-all" % cassandraVersion % Provided,
    Compile / unmanagedJars ++= pysparkJars((ThisBuild / baseDirectory).value).classpath,
    Compile / compile / javacOptions ++= Seq("-Xlint:unchecked", "-Xlint:deprecation"),
    Compile / packageBin / artifactPath := target.value / "digitforge-bulk.jar",
    stage := {
      val jar = (Compile / packageBin).value
      val out = (ThisBuild / baseDirectory).value / "build" / "jars" / "digitforge"
      IO.delete(out)
      IO.createDirectory(out)
      IO.copyFile(jar, out / "digitforge-bulk.jar")
      streams.value.log.info(s"$jar -> $out")
      out
    }
  )

// The SQL server (HiveThriftServer2) and its client (BeeLine, Hive JDBC) need no download: pyspark's jars folder
// holds spark-hive-thriftserver at pyspark's own version and every Hive 2.3 jar they use, so a staged copy would
// be a second copy of jars Spark already loads (and Maven Central's mirror here lacks the 3.5.7 thriftserver).
// This stage only checks they are there, so `make jars` fails early and says why when they are not.
lazy val sqlServerJars = (project in file("build/sbt/sql-server"))
  .settings(
    stage := {
      val names = pysparkJars((ThisBuild / baseDirectory).value).map(_.getName)
      val spark = names.collectFirst { case n if n.startsWith("spark-core_2.12-") =>
        n.stripPrefix("spark-core_2.12-").stripSuffix(".jar") }
        .getOrElse(sys.error("no spark-core_2.12 jar in the venv's pyspark jars"))
      val wanted = Seq(s"spark-hive-thriftserver_2.12-$spark.jar") ++
        Seq("hive-beeline-", "hive-jdbc-", "hive-service-rpc-").map(p => names.find(_.startsWith(p)).getOrElse(p + "*.jar"))
      val missing = wanted.filterNot(names.contains)
      if (missing.nonEmpty) sys.error(s"pyspark $spark lacks ${missing.mkString(", ")}: the SQL server needs them")
      streams.value.log.info(s"SQL server: pyspark $spark ships ${wanted.mkString(", ")}; nothing to stage")
      (ThisBuild / baseDirectory).value / "build" / "jars"
    }
  )

lazy val root = (project in file("."))
  .aggregate(sparkJars, cassandraJars, s3Jars, bulkWriter, sqlServerJars)
  .settings(
    publish / skip := true,
    addCommandAlias("stageJars", ";sparkJars/stage;cassandraJars/stage;s3Jars/stage;bulkWriter/stage;sqlServerJars/stage")
  )
