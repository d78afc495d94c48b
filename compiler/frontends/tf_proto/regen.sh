#!/usr/bin/env bash
# Regenerate graph_pb2.py and tf2xla_pb2.py from our .proto files.
# Needs grpcio-tools (pip install grpcio-tools); run from anywhere. The generated modules
# are committed, so importing the frontend never needs protoc.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
python3 -m grpc_tools.protoc --proto_path=. --python_out=. \
    compiler/frontends/tf_proto/graph.proto compiler/frontends/tf_proto/tf2xla.proto
