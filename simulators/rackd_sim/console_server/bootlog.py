"""What a GPU server prints on its serial console: firmware, bootloader, kernel, services, and faults."""

from __future__ import annotations

import random

# (seconds after the previous line, text); kernel lines get their dmesg timestamp filled in when emitted.
FIRMWARE: tuple[tuple[float, str], ...] = (
    (0.8, "\x1b[2J\x1b[1;1HAmerican Megatrends Inc. BIOS Date: 07/14/2025 Ver: 2.6.3"),
    (0.3, "Press <DEL> or <F2> to enter setup, <F11> for boot menu, <F12> for network boot."),
    (0.9, "CPU: AMD EPYC 9654 96-Core Processor x 2"),
    (0.2, "Memory: 1572864 MB DDR5-4800 OK"),
    (0.6, "PCIe: 8 x NVIDIA H100 80GB HBM3 (10de:2330) detected"),
    (0.4, "Booting from NVMe: SAMSUNG MZQL23T8HCLS-00A07"),
    (0.5, "GNU GRUB  version 2.12"),
    (0.3, "Booting `Ubuntu, with Linux 6.8.0-45-generic'"),
    (0.2, "Loading Linux 6.8.0-45-generic ..."),
    (0.2, "Loading initial ramdisk ..."),
)

KERNEL: tuple[tuple[float, str], ...] = (
    (0.1, "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0) 13.2.0)"),
    (0.0, "Command line: BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=UUID=4f1c ro console=tty0 console=ttyS0,115200n8"),
    (0.0, "BIOS-provided physical RAM map:"),
    (0.0, "DMI: Supermicro AS -8125GS-TNHR/H13DSG-O-CPU, BIOS 2.6.3 07/14/2025"),
    (0.1, "smpboot: Allowing 384 CPUs, 0 hotplug CPUs"),
    (0.2, "Memory: 1584120144K/1610612736K available (20480K kernel code)"),
    (0.1, "printk: console [ttyS0] enabled"),
    (0.3, "ACPI: Interpreter enabled"),
    (0.2, "pci 0000:3b:00.0: [10de:2330] type 00 class 0x030200"),
    (0.2, "nvme nvme0: 128/0/0 default/read/poll queues"),
    (0.1, "EXT4-fs (nvme0n1p2): mounted filesystem 4f1c r/w with ordered data mode."),
    (0.3, "Run /init as init process"),
)

SERVICES: tuple[tuple[float, str], ...] = (
    (0.2, "systemd[1]: systemd 255.4-1ubuntu8 running in system mode"),
    (0.1, "systemd[1]: Hostname set to <{host}>."),
    (0.3, "[  OK  ] Reached target local-fs.target - Local File Systems."),
    (0.2, "[  OK  ] Started systemd-journald.service - Journal Service."),
    (0.3, "nvidia: loading out-of-tree module taints kernel."),
    (0.2, "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.90.07"),
    (0.3, "[  OK  ] Started nvidia-persistenced.service - NVIDIA Persistence Daemon."),
    (0.2, "[  OK  ] Started ssh.service - OpenBSD Secure Shell server."),
    (0.3, "[  OK  ] Reached target multi-user.target - Multi-User System."),
    (0.2, ""),
    (0.0, "Ubuntu 24.04.1 LTS {host} ttyS0"),
    (0.0, ""),
)

OOPS = (
    "BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "#PF: supervisor read access in kernel mode",
    "Oops: 0000 [#1] PREEMPT SMP NOPTI",
    "CPU: 17 PID: 4711 Comm: python3 Tainted: P           OE      6.8.0-45-generic #45-Ubuntu",
    "RIP: 0010:nv_dma_unmap_sgt+0x2e/0x60 [nvidia]",
    "Call Trace:",
    " <TASK>",
    " nvidia_unlocked_ioctl+0x1c3/0x8c0 [nvidia]",
    " __x64_sys_ioctl+0x95/0xd0",
    " </TASK>",
    "---[ end trace 0000000000000000 ]---",
)

# What `echo c > /proc/sysrq-trigger` prints: a panic without a preceding oops.
PANIC = (
    "sysrq: Trigger a crash",
    "Kernel panic - not syncing: sysrq triggered crash",
    "CPU: 3 PID: 5120 Comm: bash Tainted: P           OE      6.8.0-45-generic #45-Ubuntu",
    "Hardware name: Supermicro AS -8125GS-TNHR/H13DSG-O-CPU, BIOS 2.6.3 07/14/2025",
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0x48/0x70",
    " panic+0x1a1/0x3a0",
    " sysrq_handle_crash+0x1a/0x20",
    " </TASK>",
    "Kernel Offset: 0x1e000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)",
    "---[ end Kernel panic - not syncing: sysrq triggered crash ]---",
)

XID_TEXT = {
    13: "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address",
    31: "pid=4711, name=python3, Ch 00000008, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6.",
    79: "pid=4711, name=python3, GPU has fallen off the bus.",
}


def xid_line(code: int, pci: str = "0000:3b:00") -> str:
    """An NVIDIA driver Xid report as the kernel logs it."""
    return f"NVRM: Xid (PCI:{pci}): {code}, {XID_TEXT.get(code, 'pid=4711, name=python3, Unknown Error')}"


def flood_lines(count: int, rng: random.Random) -> list[str]:
    """Chatty kernel output (a driver spamming the log) for flood tests."""
    return [
        f"mlx5_core 0000:{rng.randrange(16, 255):02x}:00.0: mlx5e_ethtool_get_link_ksettings: "
        f"link mode {rng.randrange(1 << 16):#06x} not supported, seq {n}"
        for n in range(count)
    ]


def garbage(count: int, rng: random.Random) -> bytes:
    """Line noise from a baud-rate mismatch: any byte value, including 0xFF (telnet's IAC) and NUL."""
    return bytes(rng.randrange(256) for _ in range(count))
