#!/usr/bin/env bash
# Regenerate graph_pb2.py, tf2xla_pb2.py and their .pyi type stubs from our .proto files.
# Needs grpcio-tools (pip install grpcio-tools); run from anywhere. The generated modules
# are committed, so importing the frontend never needs protoc.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
python3 -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. \
    compiler/frontends/tf_proto/graph.proto compiler/frontends/tf_proto/tf2xla.proto
# Generated code follows protoc's style, not ours: keep linters and type checkers out of it.
for f in compiler/frontends/tf_proto/*_pb2.py compiler/frontends/tf_proto/*_pb2.pyi; do
    printf '# ruff: noqa\n# mypy: ignore-errors\n%s\n' "$(cat "$f")" > "$f"
done
