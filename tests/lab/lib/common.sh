# Shared settings for the lab scripts (sourced, not run).
# The cache lives outside the work tree so fresh clones (CI) reuse it.
LAB_CACHE=${LAB_CACHE:-/var/cache/minivmm-lab}
# The Debian kernel L1 and L2 boot (bookworm-backports). Pinned so runs are
# repeatable; override with LAB_KVER=... to try another.
LAB_KVER=${LAB_KVER:-6.12.117+deb12-amd64}
# Modules L1 loads, in this order (lab-notes: the verified recipe).
LAB_MODULES="irqbypass kvm ccp kvm-amd vfio vfio_iommu_type1 vfio-pci-core vfio-pci netfs 9pnet 9pnet_virtio 9p nvme-auth nvme-core nvme tun llc stp bridge"
# Modules L2 guests may load (virtio disk/net, nvme, AHCI with its SATA disks
# and ATAPI CD-ROMs, iso9660), in dependency order (modinfo -F depends on the
# kernel's own modules; the jobs insmod them: l2/jobs/storage-common).
LAB_L2_MODULES="virtio_blk failover net_failover virtio_net nvme-auth nvme-core nvme qemu_fw_cfg crc16 crc32c_generic mbcache jbd2 ext4 uio uio_pci_generic scsi_common scsi_mod libata libahci ahci sd_mod cdrom sr_mod isofs"
LAB_QEMU_VERSION=10.0.13
# The opt-in L1 kernel with iommufd (LAB_L1_KERNEL=iommufd): Debian's
# linux-source-6.12 at this version (the stock kernel's own), configured by
# ../l1-iommufd.config, built by ../build-l1-iommufd-kernel.
LAB_L1_IOMMUFD_SRC=${LAB_L1_IOMMUFD_SRC:-6.12.117-1~deb12u1}

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

lab_dir() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
l0_qemu_dir() {
    local h; h=$(sha256sum "$(lab_dir)/l0-qemu-svm-bql.patch" | cut -c1-12)
    echo "$LAB_CACHE/qemu-$LAB_QEMU_VERSION-$h"
}
kernel_dir() {
    local h; h=$(echo "$LAB_MODULES $LAB_L2_MODULES" | sha256sum | cut -c1-8)
    echo "$LAB_CACHE/kernel-$LAB_KVER-$h"
}
l1_iommufd_kernel_dir() {
    local h; h=$(sha256sum "$(lab_dir)/l1-iommufd.config" | cut -c1-12)
    echo "$LAB_CACHE/kernel-iommufd-$LAB_L1_IOMMUFD_SRC-$h"
}
