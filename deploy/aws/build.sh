#!/usr/bin/env sh
# Builds the function's code folder, deploy/aws/.build/function, that template.yaml's CodeUri
# points at: this project and its dependencies as Linux wheels for the Lambda runtime
# (python3.12, x86_64). No Docker needed: pip picks manylinux wheels for the target platform.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
out="$here/.build"

rm -rf "$out"
mkdir -p "$out/wheel" "$out/function"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out/wheel" "$root"
"$python" -m pip install --quiet --target "$out/function" \
  --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
  --only-binary=:all: "$(ls "$out"/wheel/*.whl)[dynamodb]"  # the DynamoDB backend's client
echo "built $out/function"
