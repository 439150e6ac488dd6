// The JVM side of digitforge: the one place JVM versions are named.
//   sparkJars     -> build/jars/spark      spark-cassandra-connector and its runtime deps (for --jars;
//                                          Maven Central has no 3.5.x assembly jar, so the pieces are staged)
//   cassandraJars -> build/jars/cassandra  a Cassandra 5.0 server and its dependencies (for `make cassandra-up`)
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

lazy val root = (project in file("."))
  .aggregate(sparkJars, cassandraJars)
  .settings(
    publish / skip := true,
    addCommandAlias("stageJars", ";sparkJars/stage;cassandraJars/stage")
  )
