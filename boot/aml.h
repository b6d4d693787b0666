/* A small AML encoder (ACPI 6.4 §20, "ACPI Machine Language Specification")
 * for the DSDT of boot/acpi.c: names, integers in their shortest encoding,
 * strings, buffers, packages, scopes, devices, methods, and the resource
 * template items minivmm's devices need.
 *
 * Encoding happens into a caller-supplied buffer. Errors are sticky: the
 * first one (-ENOSPC when the buffer is full, -EINVAL for a bad name or an
 * unbalanced aml_end, -E2BIG for a block over the 2^28-byte PkgLength limit)
 * is kept in a->err, every later call does nothing, and aml_finish() returns
 * it. So a table is written as straight-line code and checked once.
 *
 * Blocks with a PkgLength (package, scope, device, method) are opened with
 * *_begin and closed with aml_end; on close the PkgLength is inserted with the
 * fewest bytes that hold it (§20.2.4), moving the body up by that much. */
#ifndef MINIVMM_AML_H
#define MINIVMM_AML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
    uint8_t *buf;
    size_t len, cap;
    int err;
    size_t open[AML_MAX_DEPTH];   /* where each open block's PkgLength goes */
    unsigned depth;
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* 0, the first error, or -EINVAL when blocks are still open. */
int aml_finish(const struct aml *a);

/* PkgLength for a block whose body (what follows the PkgLength) is body_len
 * bytes: the encoded length counts its own bytes too (§20.2.4). Writes 1-4
 * bytes to out and returns how many, or -E2BIG past 2^28 - 1. */
int aml_pkglength_encode(size_t body_len, uint8_t out[4]);

void aml_bytes(struct aml *a, const void *p, size_t n);
/* NameString (§20.2.2): "\\_SB.COM1", "^PCI0", "_S5", "" (NullName).
 * Segments are 1-4 of [A-Z0-9_], not starting with a digit; short ones are
 * padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* DefName: NameOp NameString; the caller emits the data object next. */
void aml_name(struct aml *a, const char *path);
/* ZeroOp, OneOp, or the smallest of Byte/Word/DWord/QWordConst (§20.2.3). */
void aml_integer(struct aml *a, uint64_t v);
/* String (§20.2.3): ASCII 0x01-0x7F, NUL-terminated. */
void aml_string(struct aml *a, const char *s);
/* DefBuffer with the bytes given: BufferOp PkgLength BufferSize ByteList. */
void aml_buffer(struct aml *a, const uint8_t *data, size_t len);
/* EISA ID "PNP0501" compressed into the DWordConst _HID wants (ACPI 6.4
 * §6.1.5): 3 letters of 5 bits each, then 4 hex digits, stored big-endian. */
void aml_eisaid(struct aml *a, const char *id);

void aml_package_begin(struct aml *a, unsigned nr_elements);   /* <= 255 */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
/* nargs 0-7; serialized sets the SerializeFlag (sync level 0). */
void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);
void aml_end(struct aml *a);
/* ReturnOp; the caller emits the value next. */
void aml_return(struct aml *a);

/* Resource descriptors (ACPI 6.4 §6.4) are appended to a separate struct aml
 * used as a byte list, then wrapped by aml_resource_template(). */
/* I/O Port Descriptor (§6.4.2.5), 16-bit decode. */
void aml_res_io(struct aml *rt, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQ Descriptor without the flags byte (§6.4.2.1): edge, active high,
 * exclusive. irq 0-15. */
void aml_res_irq_noflags(struct aml *rt, unsigned irq);
/* A PCI host bridge's windows, as Address Space Descriptors (§6.4.3.5):
 * resource producer, MinFixed/MaxFixed, positive decode, no translation;
 * [min, max] inclusive (-EINVAL sticky when min > max). Bus numbers and
 * I/O ports as Word, 32-bit memory as DWord (non-cacheable, read/write),
 * 64-bit memory as QWord (cacheable, read/write). */
void aml_res_word_bus(struct aml *rt, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *rt, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *rt, uint32_t min, uint32_t max);
void aml_res_qword_mem(struct aml *rt, uint64_t min, uint64_t max);
/* Emits Buffer { rt's items, End Tag (§6.4.2.9, checksum 0) }. */
void aml_resource_template(struct aml *a, const struct aml *rt);

#endif
