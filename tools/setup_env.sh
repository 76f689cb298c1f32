#!/usr/bin/env bash
# Set up (or reuse) the Python environment mmssl runs in.
#
#   bash tools/setup_env.sh            # make/refresh the venv, install the pinned stack and mmssl
#
# Environment variables:
#   MMSSL_VENV       where the virtual environment lives (default: <repo>/.venv)
#   MMSSL_CACHE      where built wheels are cached across clones (default: ~/.cache/mmssl)
#   MMSSL_PYTHON     the interpreter used to create the venv (default: python3.11, else python3)
#
# What it does, in order:
#   1. creates the venv if missing (reused otherwise);
#   2. installs torch + torchvision (the pinned pair), setuptools<81, numpy<2;
#   3. installs mmcv 2.1.0 with compiled ops from a cached wheel, building that wheel once when
#      the cache has none for this (mmcv, torch, python, cuda) combination. torch >= 2.5 headers need
#      C++20 while mmcv 2.1.0's setup.py forces -std=c++14/17, so the build runs through a small
#      compiler wrapper that raises the standard. With CUDA and nvcc present, CUDA ops are built too;
#   4. installs the rest of the pinned stack (requirements/*.txt) and mmssl in editable mode.
# A second run on the same machine takes about a minute.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMSSL_VENV:-$REPO/.venv}"
CACHE="${MMSSL_CACHE:-$HOME/.cache/mmssl}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
MMCV_VERSION="2.1.0"
STAMP="$VENV/.mmssl-stamp"

log() { printf '[setup_env] %s\n' "$*" >&2; }

if [[ -z "${MMSSL_PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then MMSSL_PYTHON=python3.11; else MMSSL_PYTHON=python3; fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment in $VENV"
    "$MMSSL_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# Requirement files decide whether anything must be (re)installed: skip the pip round trips when
# nothing changed since the last successful run.
req_hash="$(cat "$REPO"/requirements/*.txt "$REPO/setup.py" "$0" | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$req_hash" ]] && "$PY" -c "import mmssl, mmcv.ops" 2>/dev/null; then
    log "environment up to date ($VENV)"
    exit 0
fi

log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION and build tools"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
    "setuptools<81" wheel "numpy<2" ninja packaging

# ---------------------------------------------------------------------------------------------
# mmcv with ops: cached wheel keyed by mmcv, torch, python and cuda flavour.
# ---------------------------------------------------------------------------------------------
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
    read -r torch_ver py_ver cuda_ok < <("$PY" - <<'EOF'
import sys, torch
print(torch.__version__.split('+')[0], f'{sys.version_info.major}{sys.version_info.minor}',
      int(torch.cuda.is_available()))
EOF
)
    flavour=cpu
    if [[ "$cuda_ok" == "1" ]] && command -v nvcc >/dev/null 2>&1; then flavour=cuda; fi
    wheel_dir="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$torch_ver-py$py_ver-$flavour"
    mkdir -p "$wheel_dir"
    if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        log "no cached mmcv wheel in $wheel_dir: building mmcv $MMCV_VERSION with $flavour ops"
        log "(this takes about 30 minutes on 2 cores; it happens once per machine)"
        wrap_dir="$(mktemp -d)"
        for tool in gcc g++ cc c++; do
            real="$(command -v "$tool" || true)"
            [[ -z "$real" ]] && continue
            cat >"$wrap_dir/$tool" <<EOF
#!/usr/bin/env bash
# Raise the C++ standard mmcv's setup.py asks for: torch's headers need C++20.
args=()
for a in "\$@"; do
    case "\$a" in
        -std=c++11|-std=c++14|-std=c++17) args+=("-std=c++20") ;;
        *) args+=("\$a") ;;
    esac
done
exec "$real" "\${args[@]}"
EOF
            chmod +x "$wrap_dir/$tool"
        done
        build_tmp="$(mktemp -d)"
        export_env=(PATH="$wrap_dir:$PATH" CC="$wrap_dir/gcc" CXX="$wrap_dir/g++"
                    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}")
        if [[ "$flavour" == cuda ]]; then
            export_env+=(FORCE_CUDA=1 NVCC_APPEND_FLAGS="-std=c++20")
        fi
        env "${export_env[@]}" "${PIP[@]}" wheel --no-build-isolation --no-deps \
            -w "$build_tmp" "mmcv==$MMCV_VERSION"
        mv "$build_tmp"/mmcv-*.whl "$wheel_dir"/
        rm -rf "$build_tmp" "$wrap_dir"
    fi
    log "installing mmcv from $wheel_dir"
    # mmcv-lite / mmcv-full would shadow or contradict the mmcv with ops
    "${PIP[@]}" uninstall -y -q mmcv-lite mmcv-full >/dev/null 2>&1 || true
    "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel_dir"/mmcv-*.whl
    # mmcv's own runtime needs (addict, yapf, opencv, ...), without letting pip touch mmcv itself.
    "${PIP[@]}" install -q addict packaging Pillow pyyaml yapf "opencv-python<4.12" regex
fi

log "installing the pinned OpenMMLab stack and mmssl"
"${PIP[@]}" install -q -r "$REPO/requirements/mminstall.txt" -r "$REPO/requirements/runtime.txt" \
    -r "$REPO/requirements/optional.txt" -r "$REPO/requirements/tests.txt"
# benchmark peers (lightly's MAE, for tests and benchmark_train.py): no dependencies, see the file
"${PIP[@]}" install -q --no-deps -r "$REPO/requirements/benchmark.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$REPO"

"$PY" -c "import mmssl, mmcv.ops; print('mmssl', mmssl.__version__, 'ready')"
echo "$req_hash" >"$STAMP"
log "done: activate with 'source $VENV/bin/activate'"
