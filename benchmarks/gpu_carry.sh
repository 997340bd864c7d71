#!/usr/bin/env bash
# Build the carry set a GPU machine without internet needs to run the suite's GPU scripts:
# the suite's own wheel plus the wheels of the libraries its GPU paths use that such a machine's image
# lacks or holds at another version (pinned here as they ran: transformers, trl, peft, liger-kernel,
# datasets and their needs dill/multiprocess). Python 3.12, manylinux x86-64 (the GPU image).
#
#   benchmarks/gpu_carry.sh [DEST]          # here, with internet or a package index (default .whl)
#   # there, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/*.whl
#   export PYTHONPATH=/tmp/site:$PWD PYTHONSAFEPATH=1   # the suite from its wheel, benchmarks.* from here;
#   # PYTHONSAFEPATH: `python -c`/`-m` would put this folder (whose af_tasks/ is not the package) first
#
# --inspect [DEST] (default .whl-inspect): inspect_ai and what `inspect eval af_tasks/free_tier` with the
# hf/ and organism/ providers imports that the image lacks (found by running it with only the image's
# packages and these), ~17 MiB: inspect_ai without inspect_ai/binaries/ (sandbox tools, 28 MB) and
# botocore without botocore/data/ (AWS service models, 15 MB, read only when an S3 client is made), plus
# small pure-Python guards for inspect_ai's lower bounds (anyio, typing_extensions, click, rich, fsspec)
# that the image's unversioned copies may not meet. Install it with .whl into a folder whose path
# contains "site-packages": Inspect names a package's tasks af_tasks/... only from there.
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-packages .whl/*.whl \
#       .whl-inspect/*.whl && export PYTHONPATH=/tmp/site-packages:$PWD PYTHONSAFEPATH=1
set -euo pipefail
PYTHON=${PYTHON:-python3}
HERE=$(dirname "$0")

download() {  # DEST PIN...: wheels for CPython 3.12 on manylinux x86-64, no dependencies resolved
    local dest=$1
    shift
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dest" "$@"
}

if [ "${1:-}" = "--inspect" ]; then
    DEST=${2:-.whl-inspect}
    rm -rf "$DEST"
    mkdir -p "$DEST"
    download "$DEST" inspect_ai==0.3.285 \
        pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
        platformdirs==4.14.8 python-dotenv==1.2.4 semver==3.1.2 shortuuid==1.0.13 sniffio==1.3.1 \
        tenacity==9.2.1 docstring_parser==0.18.0 ijson==3.6.0 jsonlines==4.0.0 jsonpatch==1.48 \
        jsonpointer==3.12 mmh3==5.3.1 nest-asyncio2==1.7.4 jiter==0.19.0 textual==8.2.8 \
        botocore==1.43.117 jmespath==1.1.0 aiobotocore==3.10.0 s3fs==2026.6.0 aioitertools==0.13.0 \
        starlette==1.10.0 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 \
        agent-client-protocol==0.12.1 zstandard==0.25.0 zipfile-zstd==0.0.4 \
        anyio==4.16.0 typing_extensions==4.16.0 click==8.5.1 rich==15.0.0 fsspec==2026.6.0
    "$PYTHON" "$HERE/slim_wheel.py" "$DEST"/inspect_ai-*.whl inspect_ai/binaries/
    "$PYTHON" "$HERE/slim_wheel.py" "$DEST"/botocore-*.whl botocore/data/
    du -sh "$DEST"
    exit 0
fi

DEST=${1:-.whl}
mkdir -p "$DEST"
rm -f "$DEST"/af_tasks-*.whl
download "$DEST" transformers==5.23.0 trl==1.16.0 peft==0.21.2 liger-kernel==0.8.5 datasets==5.2.0 \
    dill==0.4.1 multiprocess==0.70.19
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" . 2>"$DEST/.wheel-build.log" \
    || { cat "$DEST/.wheel-build.log"; exit 1; }
rm -rf build ./*.egg-info
du -sh "$DEST"
