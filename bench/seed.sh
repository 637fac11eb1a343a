#!/bin/sh
# The seed walkthrough's host preparation and runtime steps (shared/seeds/001), as a plain
# shell script, for the provisioning benchmark (bench/provision.py). Adapted to a Debian node
# and to the offline bundle the same way airnode is: packages with dpkg -i, k0s and the images
# from the bundle copied to $B beforehand. Re-runnable by brute force (it does everything again,
# k0s with --force, as the seed's own "change the configuration" section does).
set -eu
B=${1:-/root/bench-bundle}

# Disk swap off (the seed masks the units of /proc/swaps; we also comment out fstab, or the
# swapfile comes back at boot)
for s in $(awk 'NR>1 && $1 !~ /zram/ {print $1}' /proc/swaps); do
  systemctl mask "$(systemd-escape --path --suffix=swap "$s")" 2>/dev/null || true
done
swapoff -a
sed -i '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#/' /etc/fstab

# zram, half the memory
size=$(free -b | awk '/^Mem:/ {print int($2/2)}')
cat > /etc/systemd/system/zram.service <<UNIT
[Unit]
Description=Enable ZRAM
After=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'modprobe zram && zramctl /dev/zram0 --algorithm zstd --size $size && mkswap /dev/zram0 && swapon --priority 100 /dev/zram0'
ExecStop=/bin/sh -c 'swapoff /dev/zram0; echo 1 > /sys/block/zram0/reset'

[Install]
WantedBy=default.target
UNIT
systemctl daemon-reload
systemctl enable zram.service
systemctl restart zram.service

# Kubernetes kernel settings
modprobe br_netfilter
modprobe overlay
printf 'br_netfilter\noverlay\n' > /etc/modules-load.d/k8s.conf
cat > /etc/sysctl.d/99-kubernetes-cri.conf <<SYSCTL
net.bridge.bridge-nf-call-iptables  = 1
net.ipv4.ip_forward                 = 1
net.bridge.bridge-nf-call-ip6tables = 1
SYSCTL
sysctl --system >/dev/null

# hostname in /etc/hosts
grep -q "[[:space:]]$(hostname)\$" /etc/hosts || echo "127.0.0.1 localhost $(hostname)" >> /etc/hosts

# containerd (Debian's packages from the bundle), CRI with SystemdCgroup
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$B"/*.deb >/dev/null
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl enable containerd.service
systemctl restart containerd.service
systemctl disable --now docker.service docker.socket crio.service 2>/dev/null || true

# images
for a in "$B"/*.tar; do ctr -n k8s.io images import "$a" >/dev/null; done

# k0s
install -m 755 "$B/k0s" /usr/local/bin/k0s
k0s stop 2>/dev/null || true
k0s install controller --single --disable-components metrics-server \
  --cri-socket=remote:unix:///run/containerd/containerd.sock --force
systemctl daemon-reload
k0s start
until k0s kubectl wait node --all --for=condition=Ready --timeout=10s >/dev/null 2>&1; do sleep 2; done
