# Sourced by scripts/build and scripts/test: reads --libtorch pypi|debian from the arguments and sets
# build_dir, python (the interpreter with that build's PyTorch), torch_dir (LibTorch's CMake config),
# libtorch_args (cmake's) and rest (the other arguments).
libtorch=pypi
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --libtorch) libtorch="${2:-}"; shift 2 ;;
    --libtorch=*) libtorch="${1#*=}"; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
case "$libtorch" in
  pypi)
    python="$PWD/.venv/bin/python"
    if [ ! -x "$python" ]; then echo "qreport: no .venv here: run scripts/setup first" >&2; exit 2; fi
    build_dir=build
    torch_dir="$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch" ;;
  debian)
    python=/usr/bin/python3
    build_dir=build-debian
    torch_dir=/usr/lib/x86_64-linux-gnu/cmake/Torch ;;
  *) echo "qreport: --libtorch takes pypi or debian, not '$libtorch'" >&2; exit 2 ;;
esac
libtorch_args=(-DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="${torch_dir%/Torch}" -DQREPORT_PYTHON="$python")
