# Shared by the device scripts (sourced, not run): staging the Vulkan loader here, loading it and
# naming the machine on the GPU machine.

# Here: keep .devrun/ and .gl/ out of git and download the amd64 Vulkan loader into .gl/ once,
# with the GL dispatch libraries NVIDIA's Vulkan driver links against.
stage_vulkan_loader() {
    grep -qx '/.devrun/' .git/info/exclude 2>/dev/null || echo /.devrun/ >>"$(git rev-parse --git-path info/exclude)"
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>"$(git rev-parse --git-path info/exclude)"
    if ! ls .gl/*.deb >/dev/null 2>&1; then
        mkdir -p .gl /tmp/amd64/partial
        local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
        # shellcheck disable=SC2086
        apt-get $o update >/dev/null &&
            (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    fi
    du -sh .devrun .gl
}

# On the device: install the carried loader, point it at NVIDIA's driver, and record the machine
# (GPU and CPU) under $1 before any figure is printed.
load_vulkan_and_name_machine() {
    local out="$1"
    if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    { nvidia-smi -L || true; lscpu | grep -E 'Model name|^CPU\(s\)'; } | tee "$out/machine.txt"
}

# Here: release-build examples/$1.rs and stage it in .devrun/ with the Vulkan loader in .gl/.
# $2 is a file of the library to touch first: worktrees sharing one target dir share the crate's
# artifact names, and a fresh mtime makes cargo rebuild the library from this checkout.
prepare_example() {
    local name="$1" touched="$2"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    touch "$touched"
    cargo build --release --example "$name"
    mkdir -p .devrun
    cp "$CARGO_TARGET_DIR/release/examples/$name" ".devrun/$name"
    stage_vulkan_loader
}

# On the device: run .devrun/$1 with the remaining arguments, at most $2 seconds, its output
# logged under $OUT (by default /tmp/<name with dashes>-out) after the machine's name. The binary prints the
# adapter wgpu chose first: numbers from llvmpipe or a CPU fallback say nothing about the GPU.
run_example() {
    local name="$1" limit="$2" script="$3"
    shift 3
    OUT="${OUT:-/tmp/${name//_/-}-out}"
    mkdir -p "$OUT"
    if ! [ -x ".devrun/$name" ]; then
        echo "missing .devrun/$name: run '$script prepare' first" >&2
        exit 1
    fi
    load_vulkan_and_name_machine "$OUT"
    RUST_LOG="${RUST_LOG:-warn}" timeout "$limit" ".devrun/$name" "$@" 2>&1 | tee "$OUT/$name.log"
}
