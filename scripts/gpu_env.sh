# Sourced by the GPU scripts (scripts/gpu_kit.sh, scripts/gpu_decoder_check.sh) from the
# repository root: installs the wheels of scripts/fetch_wheels.sh (.whl/) into /tmp/site once per
# machine (a lock and a marker, so scripts started side by side do not install over each other)
# and sets PYTHONPATH, PYTHONUNBUFFERED and on-demand GPU memory allocation.
PY="${PYTHON:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
  mkdir -p /tmp/site
  (
    if command -v flock >/dev/null; then flock 9; fi
    [ -e /tmp/site/.parts_installed ] || {
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && touch /tmp/site/.parts_installed
    }
  ) 9>/tmp/site.lock || return 1
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
# Several JAX processes share the GPU (the kit, its pytest, train, evaluate): allocate on demand.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
