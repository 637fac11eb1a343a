import pytest

from airnode.sizing import MIB, zram_size_bytes


@pytest.mark.parametrize(
    "memory_mb, fraction, max_mb, expected_mib",
    [
        (1964, 0.5, 8192, 982),  # the lab VM: half of 1964 MiB
        (1965, 0.5, 8192, 982),  # rounded down to whole MiB
        (32000, 0.5, 8192, 8192),  # capped
        (32000, 0.5, 0, 16000),  # 0 = no cap
        (7892, 1.0, 0, 7892),  # the seed's choice: all of memory
        (4000, 2, 0, 8000),  # up to twice the memory is allowed
        (100, 0.001, 0, 1),  # never below 1 MiB
    ],
)
def test_zram_size(memory_mb, fraction, max_mb, expected_mib):
    assert zram_size_bytes(memory_mb, fraction, max_mb) == expected_mib * MIB


def test_zram_size_rejects_nonsense_memory():
    with pytest.raises(ValueError):
        zram_size_bytes(0, 0.5, 0)
