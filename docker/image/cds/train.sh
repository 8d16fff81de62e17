#!/bin/sh
# train.sh: image-build-time AppCDS training (see docker/Dockerfile). Runs as
# uid 1000 through the real runner on the sample job in /job and /input:
# compile-java (dynamic archive for javac), jar and streaming (class lists).
# Leaves /scratch/cds/{classes.lst,javac.jsa}; fails if any run is not ok.
set -eu
run=/opt/gradeflow/gradeflow-run
# The build runs everything as uid 1000: no privilege separation to do.
export GRADEFLOW_UNSEPARATED=1
d=/scratch/cds
mkdir -p "$d"

ok() {  # ok TARFILE: the run's result.json says ok
  tar -xOf "$1" result.json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["kind"], d["ok"], d["message"]); sys.exit(0 if d["ok"] else 1)'
}

GRADEFLOW_JAVA_OPTS="-XX:ArchiveClassesAtExit=$d/javac.jsa" "$run" compile-java --main-class Train >"$d/compile.tar"
ok "$d/compile.tar"
tar -xf "$d/compile.tar" -C "$d" job.jar

GRADEFLOW_JAVA_OPTS="-XX:DumpLoadedClassList=$d/jar.lst" "$run" jar --main-class Train --jar "$d/job.jar" >"$d/jar.tar"
ok "$d/jar.tar"

GRADEFLOW_JAVA_OPTS="-XX:DumpLoadedClassList=$d/streaming.lst" "$run" streaming \
  --mapper mapper.py --reducer reducer.py --combiner reducer.py >"$d/streaming.tar"
ok "$d/streaming.tar"

# One list for both kinds of job, first occurrence order kept.
cat "$d/streaming.lst" "$d/jar.lst" | awk '!seen[$0]++' >"$d/classes.lst"
wc -l "$d/classes.lst"
