"""Rule tables for single-host tools: coreutils, files, disks, network, packages, power."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ddoc.runbooks.risk.rules import G, R, Rule, Tool, Y, opts


def _each(names: str, make: Callable[..., Rule], reason: str, **kw: Any) -> dict[str, Tool]:
    """One tool per name, each a single rule ``host.<name>``; ``reason`` may use ``{name}``."""
    return {n: Tool(make(f"host.{n}", reason.format(name=n), **kw)) for n in names.split()}


# fmt: off
_READ = (
    "cat less more head tail grep egrep fgrep zgrep zcat zless zmore bzcat xzcat rg ag ack wc "
    "uniq cut tr jq column paste join comm diff cmp fold nl rev tac strings od xxd hexdump "
    "md5sum sha1sum sha256sum sha512sum cksum b2sum base64 ls ll tree df du free top htop atop "
    "ps pgrep pidof uptime w who whoami id groups echo printf printenv locale dig nslookup host "
    "ping ping6 traceroute traceroute6 tracepath mtr ss netstat lsof iostat vmstat mpstat pidstat "
    "sar nstat iotop iftop uname stat file which whereis type readlink realpath basename dirname "
    "test [ [[ true false sleep seq pwd cd pushd popd export unset read local declare typeset "
    "alias history clear exit return shift wait set getent dmidecode lsblk blkid findmnt lspci "
    "lsusb lshw lscpu lsmod nproc arch telnet whois numfmt expr bc cal jobs : man help getfacl "
    "lsattr namei last lastlog dstat nmon pvs vgs lvs pvdisplay vgdisplay lvdisplay pvscan vgscan "
    "lvscan stern jps jstack jstat pv sync iperf3 xmllint yamllint shellcheck pg_isready "
    "pg_lsclusters pg_controldata pg_waldump"
)

TOOLS: dict[str, Tool] = {
    **_each(_READ, G, "{name} only reads"),
    # Read-only unless a flag says otherwise.
    "sort": Tool(G("host.sort", "sort only reads", flags={
        "-o": Y("host.sort.output", "sort -o writes a file")})),
    "tcpdump": Tool(G("host.tcpdump", "tcpdump only reads", flags={
        "-w": Y("host.tcpdump.write", "tcpdump -w writes a capture file")})),
    "ethtool": Tool(G("host.ethtool", "ethtool only reads", flags={
        k: Y("host.ethtool.set", "ethtool changes NIC settings")
        for k in ("-s", "--change", "-K", "--offload", "-G", "-A", "-C", "-L", "-r", "-E")})),
    "date": Tool(G("host.date", "date only reads", flags={
        "-s": Y("host.date.set", "date -s sets the clock"),
        "--set": Y("host.date.set", "date -s sets the clock")})),
    "yq": Tool(G("host.yq", "yq only reads", flags={
        "-i": Y("host.yq.inplace", "yq -i edits a file in place"),
        "--inplace": Y("host.yq.inplace", "yq -i edits a file in place")})),
    "dmesg": Tool(G("host.dmesg", "dmesg only reads", flags={
        k: R("host.dmesg.clear", "dmesg -c clears the kernel log for good")
        for k in ("-c", "-C", "--clear", "--read-clear")})),
    **{n: Tool(Y("host.nc", "nc sends data to a service", modes={
        "-z": G("host.nc.scan", "nc -z only probes a port")})) for n in ("nc", "ncat", "netcat")},
    # File changes: reversible by hand, unless they land on a system path.
    **_each("chmod chown chgrp setfacl chattr mkdir touch mv", Y,
            "{name} changes files (reversible)", paths="any"),
    **_each("cp ln install scp", Y, "{name} writes files (reversible)", paths="last"),
    "rsync": Tool(Y("host.rsync", "rsync writes files (reversible)", paths="last", modes={
        "-n": G("host.rsync.dry_run", "rsync -n (--dry-run) only lists what would change"),
        "--dry-run": G("host.rsync.dry_run", "rsync --dry-run only lists what would change"),
    }, flags={
        k: R("host.rsync.delete", "rsync --delete removes files at the destination")
        for k in ("--delete", "--delete-after", "--delete-before", "--delete-during",
                  "--delete-excluded", "--remove-source-files")})),
    "rmdir": Tool(Y("host.rmdir", "rmdir removes only empty directories", paths="any")),
    "tar": Tool(Y("host.tar", "tar writes files", modes={
        "-t": G("host.tar.list", "tar -t only lists"),
        "--list": G("host.tar.list", "tar -t only lists")})),
    "unzip": Tool(Y("host.unzip", "unzip writes files", modes={
        "-l": G("host.unzip.list", "unzip -l only lists")})),
    **_each("zip gzip gunzip bzip2 bunzip2 xz unxz zstd split", Y, "{name} rewrites files"),
    **_each("vi vim nvim nano emacs vipw visudo sudoedit", Y, "{name} opens an editor"),
    # Irreversible data loss. Even a plain `rm file` is red: there is no undo.
    **_each("rm unlink shred srm wipe", R, "{name} deletes data irreversibly"),
    **_each("dd mkfs mkfs.ext2 mkfs.ext3 mkfs.ext4 mkfs.xfs mkfs.btrfs mkfs.vfat mkfs.fat "
            "mke2fs mkswap blkdiscard truncate pvremove vgremove lvremove lvreduce pvcreate "
            "vgreduce pg_rewind pg_resetwal pg_archivecleanup", R,
            "{name} overwrites or discards data irreversibly"),
    "fdisk": Tool(R("host.fdisk", "fdisk rewrites a partition table", modes={
        "-l": G("host.fdisk.list", "fdisk -l only lists"),
        "--list": G("host.fdisk.list", "fdisk -l only lists")})),
    "sfdisk": Tool(R("host.sfdisk", "sfdisk rewrites a partition table", modes={
        k: G("host.sfdisk.list", "sfdisk -l only lists")
        for k in ("-l", "-d", "--list", "--dump")})),
    "sgdisk": Tool(R("host.sgdisk", "sgdisk rewrites a partition table", modes={
        "-p": G("host.sgdisk.print", "sgdisk -p only lists"),
        "--print": G("host.sgdisk.print", "sgdisk -p only lists")})),
    "parted": Tool(R("host.parted", "parted rewrites a partition table", modes={
        "-l": G("host.parted.list", "parted -l only lists"),
        "--list": G("host.parted.list", "parted -l only lists"),
        "print": G("host.parted.list", "parted print only lists"),
        **{w: R("host.parted", "parted rewrites a partition table")
           for w in ("mklabel", "mkpart", "rm", "resizepart", "mkfs", "rescue")}})),
    "wipefs": Tool(R("host.wipefs", "wipefs erases filesystem signatures", modes={
        "-n": G("host.wipefs.dry_run", "wipefs -n only lists"),
        "--no-act": G("host.wipefs.dry_run", "wipefs -n only lists")})),
    "xfs_repair": Tool(Y("host.xfs_repair", "xfs_repair repairs a filesystem", flags={
        "-L": R("host.xfs_repair.zero_log", "xfs_repair -L discards the journal")})),
    **{n: Tool(Y(f"host.{n}", f"{n} checks and may repair a filesystem", modes={
        "-n": G(f"host.{n}.check", f"{n} -n only checks")})) for n in ("fsck", "e2fsck")},
    **_each("resize2fs xfs_growfs lvextend lvresize lvcreate vgextend vgcreate pvmove lvchange "
            "vgchange fstrim swapoff swapon umount modprobe insmod rmmod ldconfig setenforce "
            "useradd usermod groupadd passwd chpasswd update-alternatives ntpdate hwclock "
            "logrotate renice ifup pg_basebackup pg_upgrade", Y,
            "{name} changes system state (reversible)"),
    **_each("userdel groupdel ifdown", R, "{name} removes something that is hard to restore"),
    # Processes and power.
    **_each("killall killall5", R, "{name} kills every matching process"),
    **_each("reboot halt poweroff kexec", R, "{name} takes the whole host down"),
    "shutdown": Tool(R("host.shutdown", "shutdown takes the whole host down", modes={
        "-c": Y("host.shutdown.cancel", "shutdown -c cancels a pending shutdown")})),
    **{n: Tool(Y(f"host.{n}", f"{n} changes the runlevel", sub={
        lvl: R(f"host.{n}.halt", f"{n} {lvl} halts, reboots or isolates the host")
        for lvl in ("0", "1", "6", "s", "S")})) for n in ("init", "telinit")},
    "crontab": Tool(Y("host.crontab", "crontab replaces the crontab", modes={
        "-l": G("host.crontab.list", "crontab -l only reads"),
        "-e": Y("host.crontab.edit", "crontab -e edits scheduled jobs"),
        "-r": R("host.crontab.remove", "crontab -r deletes every scheduled job")})),
    "nmcli": Tool(Y("host.nmcli", "nmcli changes network configuration", modes={
        **{k: G("host.nmcli.show", "nmcli show only reads")
           for k in ("show", "status", "list", "monitor", "general")},
        **{k: R("host.nmcli.down", "nmcli takes a connection down or deletes it")
           for k in ("down", "delete", "disconnect", "off")}})),
    **{n: Tool(G(f"host.{n}", f"{n} status only reads", sub={
        **{v: G(f"host.{n}.status", f"{n} {v} only reads")
           for v in ("status", "show", "list", "list-timezones")},
        "*": Y(f"host.{n}.set", f"{n} changes system settings")}))
       for n in ("timedatectl", "hostnamectl", "localectl", "loginctl")},
    "chronyc": Tool(Y("host.chronyc", "chronyc changes time sync", sub={
        v: G("host.chronyc.read", "chronyc only reads")
        for v in ("tracking", "sources", "sourcestats", "activity", "clients")})),
    "mount": Tool(Y("host.mount", "mount changes mounts (reversible)")),
    "sysctl": Tool(G("host.sysctl", "sysctl only reads", flags={
        k: Y("host.sysctl.write", "sysctl -w changes a kernel setting (reversible)")
        for k in ("-w", "--write", "-p", "--load", "--system")})),
    "smartctl": Tool(Y("host.smartctl", "smartctl changes drive settings", modes={
        **{k: G("host.smartctl.read", "smartctl -a/-H/-i only reads")
           for k in ("-a", "-H", "-i", "-x", "-A", "-l", "-c", "--all", "--health", "--info",
                     "--xall", "--scan", "--attributes", "--log", "--capabilities")},
        **{k: Y("host.smartctl.test", "smartctl -t runs a drive self-test")
           for k in ("-t", "--test", "-s", "--smart")}})),
    "mdadm": Tool(Y("host.mdadm", "mdadm changes a RAID array", modes={
        **{k: G("host.mdadm.detail", "mdadm --detail only reads")
           for k in ("--detail", "-D", "--examine", "-E", "--query", "-Q", "--detail-platform")},
        **{k: Y("host.mdadm.change", "mdadm --add/--grow changes an array (reversible)")
           for k in ("--add", "-a", "--grow", "-G", "--assemble", "-A", "--monitor")},
        **{k: R("host.mdadm.destroy", "mdadm stops, fails or wipes array members")
           for k in ("--stop", "-S", "--remove", "-r", "--fail", "-f", "--zero-superblock",
                     "--create", "-C")}})),
}

_PKG_READ = "list show search info policy freeze check list-installed madison depends"
_PKG_CHANGE = ("install reinstall upgrade update dist-upgrade full-upgrade downgrade remove "
               "uninstall erase autoremove makecache clean")


def _pkg(name: str) -> Tool:
    return Tool(Y(f"pkg.{name}", f"{name}: not proven read-only", sub={
        **{v: G(f"pkg.{name}.read", f"{name} {v} only reads") for v in _PKG_READ.split()},
        **{v: Y(f"pkg.{name}.change", f"{name} {v} changes installed packages (reversible)")
           for v in _PKG_CHANGE.split()},
        "purge": R(f"pkg.{name}.purge", f"{name} purge deletes packages and their config"),
    }), opts("-o -c -t --target-release -r --repo --enablerepo --disablerepo -i --index-url"))


_PKG_TOOLS = "apt apt-get yum dnf zypper apk pip pip3 npm gem snap brew"
TOOLS.update({n: _pkg(n) for n in _PKG_TOOLS.split()})
TOOLS.update({
    "dpkg": Tool(Y("pkg.dpkg", "dpkg changes installed packages", modes={
        **{k: G("pkg.dpkg.read", "dpkg query only reads")
           for k in ("-l", "-L", "-s", "-S", "--list", "--status", "--get-selections")},
        **{k: R("pkg.dpkg.purge", "dpkg --purge deletes packages and config")
           for k in ("-P", "--purge")}})),
    "rpm": Tool(Y("pkg.rpm", "rpm changes installed packages", modes={
        "-q": G("pkg.rpm.query", "rpm -q only reads"),
        "-V": G("pkg.rpm.verify", "rpm -V only reads")})),
    "ip": Tool(Y("net.ip", "ip changes network configuration", sub={
        obj: G(f"net.ip.{obj}", f"ip {obj} only reads", sub={
            **{v: G(f"net.ip.{obj}.show", f"ip {obj} {v} only reads")
               for v in ("show", "list", "ls", "get", "lst", "sh")},
            **{v: Y(f"net.ip.{obj}.change", f"ip {obj} {v} changes network config")
               for v in ("add", "change", "replace", "set", "append", "prepend", "up")},
            **{v: R(f"net.ip.{obj}.remove", f"ip {obj} {v} removes network config")
               for v in ("del", "delete", "flush")},
            "*": Y(f"net.ip.{obj}.unknown", f"ip {obj}: not proven read-only"),
        }, flags={"down": R("net.ip.down", "ip … down takes an interface down")})
        for obj in ("addr", "address", "a", "link", "l", "route", "r", "ro", "neigh", "n",
                    "neighbour", "rule", "ru", "netns", "maddr", "tunnel", "monitor")
    }), opts("-n -netns -f -family -b -batch")),
    "iptables": Tool(Y("net.iptables", "iptables changes firewall rules", modes={
        **{k: G("net.iptables.list", "iptables -L only reads")
           for k in ("-L", "--list", "-S", "--list-rules", "-C", "--check")},
        **{k: Y("net.iptables.add", "iptables -A/-I adds a rule (reversible)")
           for k in ("-A", "--append", "-I", "--insert", "-N", "-P", "-R", "-Z")},
        **{k: R("net.iptables.remove", "iptables -F/-X/-D removes firewall rules")
           for k in ("-F", "--flush", "-X", "--delete-chain", "-D", "--delete")}}),
        opts("-t --table")),
    "nft": Tool(Y("net.nft", "nft changes firewall rules", sub={
        "list": G("net.nft.list", "nft list only reads"),
        **{v: R("net.nft.remove", f"nft {v} removes firewall rules")
           for v in ("delete", "flush", "destroy")}})),
})
# fmt: on
