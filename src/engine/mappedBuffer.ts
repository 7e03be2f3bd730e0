// Buffers that live outside malloc's heap for good. Node takes a Buffer's
// memory from malloc, and glibc maps a block of 128 KiB or more on its own;
// but when such a block is freed, glibc raises the size it maps apart to
// the freed block's size (up to 32 MiB on 64-bit) and the heap top it keeps
// unreturned to twice that. One freed 6 MiB scratch left 12 MiB of freed
// heap resident after every burst of large calls. A block above 32 MiB is
// always mapped and, freed, changes nothing; only the pages used are
// resident, so the reserve costs address space, not memory.

const GLIBC_MMAP_THRESHOLD_MAX = 32 << 20;

export function mappedBuffer(bytes: number): Buffer {
  return Buffer.allocUnsafeSlow(Math.max(bytes, GLIBC_MMAP_THRESHOLD_MAX + 4096));
}
