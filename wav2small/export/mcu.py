"""Build a C bundle for the host and for a Cortex-M4F, run it (the device build under QEMU's
mps2-an386 board) and measure what a device needs: flash, RAM (static and peak stack) and
instructions per second of audio.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..contract import SAMPLING_RATE

#: C flags of every build: strict C99; no floating-point contraction, so that host and device
#: round every float operation the same way
STRICT_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off")
CORTEX_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-fno-math-errno")
LIBRARY_SOURCES = ("w2s.c", "w2s_kernels.c", "w2s_math.c", "w2s_model.c")
HOST_PROGRAM = "w2s_stream"
DEVICE_PROGRAM = "w2s_stream.elf"
DEVICE_FIRMWARE = "w2s_firmware.elf"
#: Debian packages of the device build and its emulator
DEVICE_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
QEMU = ("qemu-system-arm", "-M", "mps2-an386", "-nographic", "-icount", "shift=0")


class ToolchainMissing(OSError):
    """A compiler or the emulator is not installed; the message names the packages (an OSError: the
    command line reports it in one line)."""


def missing_tools(*, device: bool = True) -> list[str]:
    """Programs (of the host build, and with ``device`` of the Cortex-M4 build, its C library and
    QEMU) not found."""
    tools = ["cc"] + (["arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"] if device else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if device and "arm-none-eabi-gcc" not in missing:
        specs = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=rdimon.specs"], capture_output=True, text=True)
        if not Path(specs.stdout.strip()).is_file():
            missing.append("newlib (rdimon.specs)")
    return missing


def require_tools(*, device: bool = True) -> None:
    missing = missing_tools(device=device)
    if missing:
        packages = f"gcc {DEVICE_PACKAGES}" if device else "gcc"
        raise ToolchainMissing(f"{', '.join(missing)} not found: apt-get install {packages}")


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result


def host_command(bundle, output=None, defines=()) -> list[str]:
    """The host build of the streaming program, as in the bundle's Makefile."""
    bundle = Path(bundle)
    output = output or bundle / HOST_PROGRAM
    return ["cc", *STRICT_FLAGS, *defines, "-I", str(bundle), "-o", str(output),
            *[str(bundle / s) for s in (*LIBRARY_SOURCES, "w2s_main.c")], "-lm"]


def device_commands(bundle) -> dict[str, list[str]]:
    """The Cortex-M4F builds: the streaming program (semihosting, for QEMU) and the bare firmware
    (no C library, for the flash and RAM figures)."""
    bundle = Path(bundle)
    gcc = ["arm-none-eabi-gcc", *CORTEX_M4_FLAGS, *STRICT_FLAGS, "-I", str(bundle), "-T", str(bundle / "cortex-m4/link.ld")]
    library = [str(bundle / s) for s in LIBRARY_SOURCES]
    return {
        DEVICE_PROGRAM: [*gcc, "-DW2S_CORTEX_M", "-DW2S_SEMIHOSTING", "--specs=rdimon.specs", "-o",
                         str(bundle / DEVICE_PROGRAM), str(bundle / "cortex-m4/startup.c"), *library,
                         str(bundle / "w2s_main.c"), "-lm"],
        DEVICE_FIRMWARE: [*gcc, "-nostdlib", "-o", str(bundle / DEVICE_FIRMWARE), str(bundle / "cortex-m4/startup.c"),
                          str(bundle / "cortex-m4/firmware.c"), *library, "-lgcc"],
    }


def makefile() -> str:
    """The bundle's Makefile: the same commands as :func:`host_command` and :func:`device_commands`."""
    strict, m4 = " ".join(STRICT_FLAGS), " ".join(CORTEX_M4_FLAGS)
    library = " ".join(LIBRARY_SOURCES)
    return f"""# wav2small C bundle. Targets:
#   make                      the streaming program for this computer: ./{HOST_PROGRAM} IN.wav [OUT.csv]
#   make {DEVICE_PROGRAM}     the same program for a Cortex-M4F (semihosting: files on the debugger's host)
#   make run-m4 IN=x.wav OUT=y.csv   run it on QEMU's mps2-an386 board (Cortex-M4), print instructions and stack
#   make {DEVICE_FIRMWARE}   a bare Cortex-M4F image (no C library) whose size is what a device needs
# Device builds need Debian's {DEVICE_PACKAGES}.
CC ?= cc
ARM_CC ?= arm-none-eabi-gcc
STRICT = {strict}
M4 = {m4} $(STRICT) -T cortex-m4/link.ld
LIBRARY = {library}

{HOST_PROGRAM}: $(LIBRARY) w2s_main.c *.h
\t$(CC) $(STRICT) -o $@ $(LIBRARY) w2s_main.c -lm

{DEVICE_PROGRAM}: $(LIBRARY) w2s_main.c *.h cortex-m4/*
\t$(ARM_CC) $(M4) -DW2S_CORTEX_M -DW2S_SEMIHOSTING --specs=rdimon.specs -o $@ cortex-m4/startup.c $(LIBRARY) w2s_main.c -lm

{DEVICE_FIRMWARE}: $(LIBRARY) *.h cortex-m4/*
\t$(ARM_CC) $(M4) -nostdlib -o $@ cortex-m4/startup.c cortex-m4/firmware.c $(LIBRARY) -lgcc
\tarm-none-eabi-size -A $@

run-m4: {DEVICE_PROGRAM}
\t{" ".join(QEMU)} -semihosting-config enable=on,target=native,arg={HOST_PROGRAM},arg=$(IN),arg=$(OUT) -kernel {DEVICE_PROGRAM}

clean:
\trm -f {HOST_PROGRAM} {DEVICE_PROGRAM} {DEVICE_FIRMWARE}

.PHONY: run-m4 clean
"""


def build_host(bundle, output=None, defines=()) -> Path:
    """Compile the streaming program for this computer; returns its path. ``defines``: extra
    -D options (``-DW2S_HOP_CHUNKS=1``: a result after every chunk)."""
    require_tools(device=False)
    command = host_command(bundle, output, defines)
    _run(command)
    return Path(command[command.index("-o") + 1])


def build_device(bundle) -> dict[str, Path]:
    """Compile the Cortex-M4F program and firmware; returns their paths by name."""
    require_tools()
    built = {}
    for name, command in device_commands(bundle).items():
        _run(command)
        built[name] = Path(bundle) / name
    return built


def read_rows(text: str) -> np.ndarray:
    """(rows, 4) float64 from the program's CSV (seconds, arousal, dominance, valence)."""
    lines = [line for line in text.splitlines()[1:] if line and not line.startswith("#")]
    return np.array([[float(v) for v in line.split(",")] for line in lines], dtype=np.float64).reshape(-1, 4)


def run_host(program, audio) -> np.ndarray:
    """Stream ``audio`` (a WAV or raw 16-bit PCM file) through the host program."""
    return read_rows(_run([program, audio]).stdout)


def run_device(program, audio, *, timeout: float = 300) -> tuple[np.ndarray, dict]:
    """Stream ``audio`` through the Cortex-M4 program under QEMU (instruction counting on).

    Returns (rows as :func:`run_host`, measurements: ``chunks``, ``instructions`` and
    ``readout_instructions`` spent in w2s_process, ``readouts``, ``peak_stack_bytes``, ``state_bytes``).
    """
    require_tools()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        config = f"enable=on,target=native,arg={HOST_PROGRAM},arg={Path(audio).resolve()},arg={out}"
        result = _run([*QEMU, "-semihosting-config", config, "-kernel", Path(program).resolve()], timeout=timeout)
        if not out.exists():
            raise RuntimeError(f"the device program wrote no output:\n{result.stdout}")
        rows = read_rows(out.read_text())
    stats = {}
    for key, *values in (line[2:].split() for line in result.stdout.splitlines() if line.startswith("# ")):
        numbers = [int(v) for v in values]
        stats[key] = numbers[0] << 32 | numbers[1] if len(numbers) == 2 else numbers[0]
    return rows, stats


def section_sizes(elf) -> dict[str, int]:
    """Bytes per section of an ELF (arm-none-eabi-size -A)."""
    sizes = {}
    for line in _run(["arm-none-eabi-size", "-A", elf]).stdout.splitlines():
        match = re.match(r"^(\.\S+)\s+(\d+)\s+\d+", line)
        if match:
            sizes[match.group(1)] = int(match.group(2))
    return sizes


def write_test_audio(path, seconds: float, *, seed: int = 0) -> Path:
    """The package's speech-like test signal (:func:`wav2small.testing.synth_speech`) as a 16 kHz float WAV."""
    import soundfile

    from ..testing import synth_speech

    soundfile.write(str(path), synth_speech(seconds, seed), SAMPLING_RATE, subtype="FLOAT")
    return Path(path)


def device_footprint(bundle, *, seconds: float = 2.048, macs_per_second: float | None = None) -> dict:
    """Flash, RAM and instructions of a bundle on the emulated Cortex-M4F.

    flash: .text + .rodata (+ .ARM.exidx, .data) of the bare firmware (code, weights, constants, no
    C library); ram: its .data + .bss (state, one chunk buffer) plus the peak stack of w2s_process,
    measured by painting the stack under QEMU while ``seconds`` of a test signal stream through.
    Instructions are counted by QEMU (-icount shift=0, read through SysTick); the clock for real
    time assumes one instruction per cycle.
    """
    bundle = Path(bundle)
    built = build_device(bundle)
    sizes = section_sizes(built[DEVICE_FIRMWARE])
    with tempfile.TemporaryDirectory() as tmp:
        audio = write_test_audio(Path(tmp) / "test.wav", seconds)
        _, stats = run_device(built[DEVICE_PROGRAM], audio)
    audio_seconds = stats["chunks"] * _chunk_samples(bundle) / SAMPLING_RATE
    per_second = stats["instructions"] / audio_seconds
    flash = sum(sizes.get(s, 0) for s in (".text", ".rodata", ".ARM.exidx", ".data"))
    static_ram = sizes.get(".data", 0) + sizes.get(".bss", 0)
    result = {
        "flash_bytes": flash, "flash_sections": {s: sizes.get(s, 0) for s in (".text", ".rodata", ".ARM.exidx", ".data")},
        "ram_bytes": static_ram + stats["peak_stack_bytes"], "static_ram_bytes": static_ram,
        "state_bytes": stats["state_bytes"], "peak_stack_bytes": stats["peak_stack_bytes"],
        "audio_seconds": round(audio_seconds, 3), "chunks": stats["chunks"], "readouts": stats["readouts"],
        "instructions_per_second": int(round(per_second)),
        "readout_share": round(stats["readout_instructions"] / stats["instructions"], 4),
        "real_time_mhz": round(per_second / 1e6, 1),
        "note": "instructions counted by QEMU (mps2-an386, -icount shift=0); the clock assumes one instruction per "
                "cycle, an estimate: a Cortex-M4 takes 2 cycles for most loads and more for divisions and flash "
                "wait states, and fewer when loads pipeline",
    }
    if macs_per_second:
        result["macs_per_second"] = int(macs_per_second)
        result["instructions_per_mac"] = round(per_second / macs_per_second, 3)
    return result


def _chunk_samples(bundle) -> int:
    text = (Path(bundle) / "w2s_config.h").read_text()
    return int(re.search(r"#define W2S_FRAMES_PER_CHUNK (\d+)", text).group(1)) * int(
        re.search(r"#define W2S_HOP (\d+)", text).group(1))
