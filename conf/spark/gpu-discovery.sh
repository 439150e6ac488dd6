#!/usr/bin/env bash
# Spark resource discovery script: the GPUs of this machine as {"name":"gpu","addresses":["0","1",...]}
# (spark.{worker,executor}.resource.gpu.discoveryScript). No GPU or no nvidia-smi: an empty list.
set -uo pipefail
addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | grep -E '^[0-9]+$' \
  | sed 's/.*/"&"/' | paste -sd, -)
echo "{\"name\":\"gpu\",\"addresses\":[${addresses}]}"
