#!/bin/sh
# mmdebstrap customize hook for the lab VM image. $1 is the guest root filesystem.
# Part of the image recipe: any change here changes the cache key.
set -eu
root="$1"

echo "$AIRNODE_LAB_HOSTNAME" > "$root/etc/hostname"
# A stock /etc/hosts without the hostname: the deploy must add it.
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
HOSTS
cat > "$root/etc/fstab" <<'FSTAB'
# /etc/fstab: static file system information (airnode lab VM).
/dev/vda	/	ext4	defaults,errors=remount-ro	0	1
FSTAB

install -d -m 700 "$root/root/.ssh"
echo "$AIRNODE_LAB_PUBKEY" > "$root/root/.ssh/authorized_keys"
chmod 600 "$root/root/.ssh/authorized_keys"
cat > "$root/etc/ssh/sshd_config.d/airnode-lab.conf" <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SSHD

# DHCP on the single NIC (QEMU user networking, restricted: no egress).
cat > "$root/etc/systemd/network/10-lab.network" <<'NET'
[Match]
Name=eth0

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service
# The guest is air-gapped: no apt lists (apt would wait on DNS), no timers that reach out.
rm -rf "$root"/var/lib/apt/lists/*
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
# Python is in the image for the test doubles only (they call /usr/bin/python3.11). Nothing
# airnode runs on a node may need it: no `python3` on PATH.
rm -f "$root/usr/bin/python3" "$root/usr/bin/python"
