# Shared by the device scripts (sourced, not run): staging the Vulkan loader here, loading it and
# naming the machine on the GPU machine.

# Here: keep .devrun/ and .gl/ out of git and download the amd64 Vulkan loader into .gl/ once.
stage_vulkan_loader() {
    grep -qx '/.devrun/' .git/info/exclude 2>/dev/null || echo /.devrun/ >>"$(git rev-parse --git-path info/exclude)"
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>"$(git rev-parse --git-path info/exclude)"
    if ! ls .gl/*.deb >/dev/null 2>&1; then
        mkdir -p .gl /tmp/amd64/partial
        local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
        # shellcheck disable=SC2086
        apt-get $o update >/dev/null && (cd .gl && apt-get $o download libvulkan1)
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
    (nvidia-smi -L || true) | tee "$out/gpu.txt"
    lscpu | grep -E 'Model name|^CPU\(s\)' | tee "$out/cpu.txt"
}
