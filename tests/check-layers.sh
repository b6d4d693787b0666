#!/usr/bin/env bash
# The dependency rules of ARCHITECTURE.md ("The parts"), checked on the
# sources' #include lines: each rule names the files it covers and the
# headers they must not include. Prints one line per rule and
# 'N passed, N failed'; exits 1 if any rule is broken, naming the line.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0

# rule NAME 'FILES (globs)' 'FORBIDDEN include regex' ['ALLOWED include regex']
rule() {
    local name=$1 files=$2 forbid=$3 allow=${4:-} hits
    # shellcheck disable=SC2086
    hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"($forbid)" $files 2>/dev/null |
           { if [ -n "$allow" ]; then grep -vE "\"($allow)\""; else cat; fi; })
    if [ -z "$hits" ]; then
        echo "ok   $name"
        pass=$((pass + 1))
    else
        echo "FAIL $name:"
        sed 's/^/       /' <<<"$hits"
        fail=$((fail + 1))
    fi
}

shopt -s globstar nullglob
rule "devices/ never includes vfio/ or host/" 'devices/**/*.[ch]' 'vfio/|host/'
rule "devices/ and the core never include the front end" \
     'devices/**/*.[ch] vmm/*.[ch] vfio/*.[ch] host/*.[ch] boot/*.[ch] arch/**/*.[ch]' 'frontend/'
rule "the vCPU loop sees neither struct vm nor vfio/" 'vmm/vcpu.[ch]' 'vfio/|host/|vmm/vm\.h'
rule "vfio/ includes only host/'s library interface" 'vfio/*.[ch]' 'host/' 'host/sysfs\.h|host/bind\.h'
rule "the host library never includes the host CLI" 'host/sysfs.[ch] host/names.c host/bind.[ch] host/topology.[ch]' 'host/cli\.h'
rule "storage and packet backends know no virtio" 'devices/block/*.[ch] devices/net/*.[ch]' 'devices/virtio/'
rule "arch/ never includes devices/, vfio/ or host/" 'arch/**/*.[ch]' 'devices/|vfio/|host/'
rule "the PCI layer includes no device model" 'devices/pci/*.[ch]' 'devices/(virtio|block|net|legacy|chipset)/'

echo "layers: $pass passed, $fail failed"
[ "$fail" = 0 ]
