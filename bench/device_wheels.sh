#!/usr/bin/env bash
# Wheels for the lent GPU machine (no network there): what bench/gpu_check.sh needs that its image
# lacks (snakemake, wandb, jsonschema and their needs), for its Python 3.12 on x86-64, in .whl/
# (git-ignored; name it in `carry`). Packages the image has already (torch, numpy, scipy,
# matplotlib, ...) are left out: two versions of one package stop the install there.
# Usage here: bash bench/device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
pins=$(python3 - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if re.split("[=<>]", d)[0] in ("snakemake", "wandb", "jsonschema")))
PY
)
# Resolve and build here (pure-Python sdists such as connection_pool become wheels), then swap every
# wheel compiled for this Python for its cp312 build.
python3 -m pip wheel -q -w .whl $pins
platforms=""
for n in 2_39 2_35 2_34 2_31 2_28 2_27 2_24 2_17 2014 1; do
  case $n in 2014|1) platforms+=" --platform manylinux${n}_x86_64" ;; *) platforms+=" --platform manylinux_${n}_x86_64" ;; esac
done
here=$(python3 -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
for whl in .whl/*-"$here"-*.whl; do
  [ -e "$whl" ] || continue
  base=$(basename "$whl"); name=${base%%-*}; version=$(echo "$base" | cut -d- -f2)
  rm "$whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
    -d .whl "$name==$version"
done
# in the image already (KINDS.md's package list): keep theirs
for have in numpy scipy matplotlib pyyaml PyYAML torch nvidia_ triton tqdm requests urllib3 idna certifi \
    charset_normalizer packaging protobuf psutil typing_extensions click jinja2 MarkupSafe markupsafe attrs \
    pillow fonttools kiwisolver contourpy cycler pyparsing python_dateutil six wrapt tabulate filelock \
    fsspec networkx sympy mpmath setuptools anyio h11 httpcore httpx xxhash msgpack; do
  rm -f .whl/${have}-*.whl .whl/${have}*-*.whl
done
du -sh .whl
ls .whl | wc -l
