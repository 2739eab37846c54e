#!/usr/bin/env bash
# 1P+1D online: two OpenAI servers, prefill worker OMP-bound to core 0, decode to core 1.
# The prefill server runs without chunked prefill: the ExampleConnector stores a prompt's KV
# from the blocks it had at its first step, so a prompt split over steps stores only its first
# chunk and the decode server's load then fails (shape mismatch, seen here with chunking on).
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=$(dirname "$HERE")
D=$HARNESS/work/disagg
PY=$HARNESS/.venv/bin/python
M=$HARNESS/work/model
mkdir -p "$D"
common="--model $M --max-model-len 2048 --max-num-seqs 16 --max-num-batched-tokens 2048 --no-enable-prefix-caching --kv-cache-memory-bytes 268435456 --enforce-eager --dtype bfloat16 --host 127.0.0.1"
cfg() { echo "{\"kv_connector\":\"TimedExampleConnector\",\"kv_connector_module_path\":\"timed_connector\",\"kv_role\":\"$1\",\"kv_connector_extra_config\":{\"shared_storage_path\":\"$D/kv_online\"}}"; }
cd "$D"
PYTHONPATH=$HERE VLLM_CPU_OMP_THREADS_BIND=0 nohup $PY -m vllm.entrypoints.openai.api_server $common --port 8100 --no-enable-chunked-prefill --kv-transfer-config "$(cfg kv_producer)" > on_prefill.log 2>&1 &
echo $! > on_prefill.pid
PYTHONPATH=$HERE VLLM_CPU_OMP_THREADS_BIND=1 nohup $PY -m vllm.entrypoints.openai.api_server $common --port 8200 --enable-chunked-prefill --kv-transfer-config "$(cfg kv_consumer)" > on_decode.log 2>&1 &
echo $! > on_decode.pid
