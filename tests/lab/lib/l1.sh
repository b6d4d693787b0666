# Helpers for scenarios, which run inside L1 (chroot into the host's tree) as
# root. Sourced by tests/lab/scenarios/*. Environment from the harness:
#   LAB_OUT        output folder (copied back: build/lab/<scenario>/<run>/)
#   MINIVMM_SRC    the checkout (build/minivmm inside it)
#   LAB_KERNEL     the Debian kernel (bzImage) for L2
#   LAB_L2_INITRD  busybox initramfs for L2 (tests/lab/l2)
#   LAB_L2_ISO     the El Torito EFI ISO (tests/lab/build-l2-iso): grub, the
#                  L2 kernel and initramfs, a known data file; "" when it
#                  could not be built (l2_iso_ready fails then)
set -u
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
MINIVMM="$MINIVMM_SRC/build/minivmm"
# Stand-ins at fixed L1 addresses (tests/lab/lab: L1_DEVICES)
BOCHS_BDF=0000:00:03.0
NVME_BDF=0000:00:04.0
E1000E_BDF=0000:00:05.0
EDU_BDF=0000:00:06.0

note() { echo "[$(date +%T)] $*"; }
pass() { echo "PASS: $*"; exit 0; }
fail() { l2_fault_signature; echo "FAIL: $*"; exit 1; }

# A fault of the lab that ends an L2 guest alone while L1 stays healthy
# (lab-notes: L0's vCPU threads race while an L2 runs; with 2 L1 vCPUs an L2
# Linux sometimes triple-faults early in its boot): a guest that
# triple-faulted where the scenario did not ask for it. Printed as an
# "L2-FAULT:" line before the FAIL line; the harness then names the run a lab
# fault and runs it once more (a second time counts as a failure). A
# scenario whose guest resets on purpose through a triple fault sets
# LAB_EXPECT_TRIPLE_FAULT=1.
l2_fault_signature() {
    [ -n "${LAB_EXPECT_TRIPLE_FAULT:-}" ] && return 0
    local hit
    hit=$(grep -ras 'triple fault (KVM_EXIT_SHUTDOWN)' "$LAB_OUT" 2>/dev/null | head -1)
    [ -n "$hit" ] && echo "L2-FAULT: an L2 guest triple-faulted: ${hit#$LAB_OUT/}"
    return 0
}

# bdf_of VENDOR:DEVICE -> first matching BDF
bdf_of() {
    local want=$1 d
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x${want%%:*}:0x${want##*:}" ] && { basename "$d"; return 0; }
    done
    return 1
}

# vfio_pci_ready: the vfio-pci driver is registered (the stock L1 kernel
# insmods it; the opt-in iommufd L1 kernel has it built in, so it is not in
# /proc/modules there)
vfio_pci_ready() { [ -d /sys/bus/pci/drivers/vfio-pci ]; }

driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null || true; }

# bind_vfio BDF: move a device to vfio-pci (driver_override), wait for its group node
bind_vfio() {
    local bdf=$1 dev=/sys/bus/pci/devices/$1 grp
    [ -d "$dev" ] || fail "no PCI device $bdf in L1"
    echo vfio-pci > "$dev/driver_override"
    [ -e "$dev/driver" ] && echo "$bdf" > "$dev/driver/unbind"
    echo "$bdf" > /sys/bus/pci/drivers_probe
    grp=$(basename "$(readlink "$dev/iommu_group")")
    for _ in $(seq 50); do [ -e "/dev/vfio/$grp" ] && { note "bound $bdf to vfio-pci (group $grp)"; return 0; }; sleep 0.2; done
    fail "$bdf: /dev/vfio/$grp did not appear after binding to vfio-pci (driver: $(driver_of "$bdf"))"
}

# bind_vfio_id VENDOR:DEVICE: bind the first such device to vfio-pci; prints its BDF
bind_vfio_id() {
    local bdf
    bdf=$(bdf_of "$1") || fail "no PCI device $1 in L1"
    bind_vfio "$bdf" >&2
    echo "$bdf"
}

# wait_for FILE REGEX SECONDS [PID]: 0 when a line matches; 1 on timeout or
# when PID (the guest's VMM) exited first.
wait_for() {
    local file=$1 re=$2 secs=$3 pid=${4:-} t=0
    while [ "$t" -lt "$((secs * 2))" ]; do
        grep -qaE "$re" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            grep -qaE "$re" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.5; t=$((t + 1))
    done
    return 1
}

# lab_screenshot NAME: L0's screen (what L2 drew on the passed-through
# display) as $LAB_OUT/NAME.png; prints the OCR text. The harness on L0 does
# the screendump and the OCR.
lab_screenshot() {
    local name=$1
    rm -f "$LAB_OUT/$name.done"
    touch "$LAB_OUT/screenshot-req-$name"
    for _ in $(seq 120); do [ -e "$LAB_OUT/$name.done" ] && break; sleep 0.5; done
    [ -e "$LAB_OUT/$name.done" ] || { echo "(screenshot $name: no answer from the harness)"; return 1; }
    [ -e "$LAB_OUT/$name.error" ] && { cat "$LAB_OUT/$name.error"; return 1; }
    cat "$LAB_OUT/$name.txt"
}

# The peer: QEMU 10.0 (bookworm-backports) on L1's real KVM.
PEER_QEMU="qemu-system-x86_64 -accel kvm -machine q35 -cpu host -nodefaults -display none -vga none -no-reboot"

# kill_tree PID: stop a VMM we started
kill_vmm() { kill "$1" 2>/dev/null; for _ in $(seq 20); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.25; done; kill -9 "$1" 2>/dev/null; }

# elapsed since a `date +%s.%N` stamp
since() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }

# A VMM whose COM1 is driven from here (OVMF's shell):
# con_start NAME CMD...: runs CMD with stdin on a fifo (con_type writes to it,
# through fd 3) and stdout in $LAB_OUT/NAME-serial.log, stderr in NAME.log.
# Sets con_name, con_pid, con_serial, con_t0.
con_start() {
    con_name=$1; shift
    local fifo=/tmp/$con_name.fifo
    con_serial=$LAB_OUT/$con_name-serial.log
    rm -f "$fifo"; mkfifo "$fifo"
    con_t0=$(date +%s.%N)
    "$@" < "$fifo" > "$con_serial" 2> "$LAB_OUT/$con_name.log" &
    con_pid=$!
    exec 3> "$fifo"
}
# con_count REGEX: how many times REGEX occurs on the console so far
con_count() { grep -aoE "$1" "$con_serial" 2>/dev/null | wc -l; }
# con_wait REGEX N SECS: until the Nth occurrence; 1 when the VMM exited or on timeout
con_wait() {
    local re=$1 n=$2 t=0
    while [ "$t" -lt "$(($3 * 2))" ]; do
        [ "$(con_count "$re")" -ge "$n" ] && return 0
        kill -0 "$con_pid" 2>/dev/null || break
        sleep 0.5; t=$((t + 1))
    done
    [ "$(con_count "$re")" -ge "$n" ]
}
# con_type LINE [SECS]: type a shell command line, wait for the next Shell> (default 120 s)
con_type() {
    local n; n=$(con_count 'Shell>')
    sleep 0.5
    printf '%s\r' "$1" >&3
    con_wait 'Shell>' $((n + 1)) "${2:-120}"
}
# con_finish: `reset -s` in the shell, wait up to 60 s for the exit; sets con_rc
# (the exit status, or "killed" when it had to be stopped)
con_finish() {
    sleep 0.5
    printf 'reset -s\r' >&3
    con_rc=killed
    for _ in $(seq 120); do
        kill -0 "$con_pid" 2>/dev/null || { wait "$con_pid"; con_rc=$?; break; }
        sleep 0.5
    done
    exec 3>&-
    [ "$con_rc" = killed ] && { kill_vmm "$con_pid"; wait "$con_pid" 2>/dev/null; }
    note "$con_name: exited $con_rc after $(since "$con_t0") s"
}
# con_stop: stop the VMM without asking the guest (after a failure)
con_stop() { exec 3>&-; kill_vmm "$con_pid"; wait "$con_pid" 2>/dev/null; }

# KVM's own counters (debugfs, summed over the VMs that exist now), for
# figures that mean the same for minivmm and the peer QEMU.
# kvm_stats_ready: mounts debugfs when needed; 1 when L1's KVM has none
kvm_stats_ready() {
    [ -d /sys/kernel/debug/kvm ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    [ -r /sys/kernel/debug/kvm/exits ]
}
# kvm_stats_snap FILE: "name value" per top-level counter
kvm_stats_snap() {
    local f
    : > "$1"
    for f in /sys/kernel/debug/kvm/*; do
        [ -f "$f" ] && echo "${f##*/} $(cat "$f" 2>/dev/null)" >> "$1"
    done
}
# kvm_stats_delta BEFORE AFTER: "name delta" for each counter that moved
# (a counter missing from BEFORE counts from 0: the VM did not exist yet)
kvm_stats_delta() {
    awk 'NR == FNR { b[$1] = $2; next }
         $2 ~ /^[0-9]+$/ && $2 - b[$1] != 0 { printf "%s %d\n", $1, $2 - b[$1] }' "$1" "$2"
}

# l2_iso_ready: the lab's ISO (LAB_L2_ISO) is there; sets what its builder
# recorded beside it (LAB_L2_ISO.info): ISO_DATA_NAME (the data file in its
# root), ISO_DATA_BYTES, ISO_DATA_SHA256, ISO_BYTES, ISO_SHA256
l2_iso_ready() {
    [ -n "${LAB_L2_ISO:-}" ] || fail "no LAB_L2_ISO: the harness could not build the ISO (tests/lab/build-l2-iso; its error is in the lab run's output)"
    if [ ! -r "$LAB_L2_ISO" ] || [ ! -r "$LAB_L2_ISO.info" ]; then fail "cannot read $LAB_L2_ISO or its .info"; fi
    # shellcheck disable=SC1090,SC1091
    . "$LAB_L2_ISO.info"
    if [ -z "${ISO_DATA_SHA256:-}" ] || [ -z "${ISO_SHA256:-}" ]; then fail "$LAB_L2_ISO.info lacks the hashes"; fi
    note "ISO: $LAB_L2_ISO, $ISO_BYTES bytes, sha256 $ISO_SHA256; /$ISO_DATA_NAME sha256 $ISO_DATA_SHA256"
}

# peer_ovmf VARS: the peer's stock OVMF as two pflash drives (CODE read-only,
# VARS a fresh copy of OVMF_VARS at the path VARS), in the array peer_fw
peer_ovmf() {
    cp "$OVMF_VARS" "$1" || fail "cannot copy $OVMF_VARS to $1"
    peer_fw=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
             -drive "if=pflash,format=raw,file=$1")
}

# make_esp IMG LABEL ARGS: a 96 MiB EFI system partition (FAT32, no partition
# table) with volume label LABEL holding the L2 kernel (vmlinuz.efi), the L2
# initramfs (initrd.img) and a startup.nsh (kept as IMG without .img plus
# -startup.nsh) that OVMF's shell runs: the kernel through its EFI stub with
# "console=ttyS0 initrd=\initrd.img ARGS"
make_esp() {
    local img=$1 label=$2 args=$3 nsh=${1%.img}-startup.nsh
    rm -f "$img"
    truncate -s 96M "$img" || fail "cannot create $img"
    mkfs.vfat -F 32 -n "$label" "$img" > /dev/null || fail "mkfs.vfat $img failed"
    mcopy -i "$img" "$LAB_KERNEL" ::vmlinuz.efi || fail "mcopy the kernel failed"
    mcopy -i "$img" "$LAB_L2_INITRD" ::initrd.img || fail "mcopy the initramfs failed"
    printf 'fs0:\r\n\\vmlinuz.efi console=ttyS0 initrd=\\initrd.img %s\r\n' "$args" > "$nsh"
    mcopy -i "$img" "$nsh" ::startup.nsh || fail "mcopy startup.nsh failed"
    note "ESP $(basename "$img"): $(mdir -i "$img" -b :: | tr '\n' ' ')"
}

# l2_boot NAME SECS CMD...: runs CMD (a VMM whose guest writes its serial
# console to $LAB_OUT/NAME-serial.log; CMD's stdout and stderr go to
# $LAB_OUT/NAME.log) until the guest powers off, at most SECS seconds. Sets
# t_init (seconds to the "L2-MARKER: init ok" line, "" if it never came),
# secs (seconds to the VMM's exit) and rc (its exit status, or "killed" when
# it had to be stopped); prints the guest's L2-MARKER lines.
l2_boot() {
    local name=$1 max=$2 pid t0 serial=$LAB_OUT/$1-serial.log
    shift 2
    : > "$serial"   # empty, and there even when the VMM refuses to start
    t0=$(date +%s.%N)
    "$@" > "$LAB_OUT/$name.log" 2>&1 < /dev/null &
    pid=$!
    t_init=""
    for _ in $(seq $((max * 2))); do
        [ -z "$t_init" ] && grep -qa 'L2-MARKER: init ok' "$serial" 2>/dev/null && t_init=$(since "$t0")
        grep -qa 'L2-MARKER: powering off' "$serial" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    [ -z "$t_init" ] && grep -qa 'L2-MARKER: init ok' "$serial" 2>/dev/null && t_init=$(since "$t0")
    # after the power-off marker: the VMM's own exit (up to 60 s)
    if grep -qa 'L2-MARKER: powering off' "$serial" 2>/dev/null; then
        for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    secs=$(since "$t0")
    if kill -0 "$pid" 2>/dev/null; then
        kill_vmm "$pid"; wait "$pid" 2>/dev/null; rc=killed
    else
        wait "$pid"; rc=$?
    fi
    note "$name: init marker after ${t_init:-(never)} s, exited $rc after $secs s"
    grep -a 'L2-MARKER' "$serial" 2>/dev/null | tr -d '\r' | sed "s/^/    $name: /"
}

# not_built NAME: minivmm's refusal at start of a device this build lacks
# (devices/block/disk_args.c), from $LAB_OUT/NAME.log; "" when none
not_built() { grep -a 'is not built into this minivmm' "$LAB_OUT/$1.log" 2>/dev/null | head -1; }

# ratio A B: A / B to two places ("n/a" when B is 0 or either is empty)
ratio() { echo "${1:-0} ${2:-0}" | awk '{ if ($2 > 0 && $1 > 0) printf "%.2f", $1 / $2; else print "n/a" }'; }

# vfio_group_free BDF: no process holds the device's /dev/vfio/GROUP (a VMM
# that exited released it); waits up to 10 s
vfio_group_free() {
    local grp p
    grp=$(basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")")
    for _ in $(seq 20); do
        p=$(for p in /proc/[0-9]*; do ls -l "$p/fd" 2>/dev/null | grep -q "/dev/vfio/$grp\$" && basename "$p"; done)
        [ -z "$p" ] && return 0
        sleep 0.5
    done
    note "/dev/vfio/$grp is still held by pid(s) $p"
    return 1
}
