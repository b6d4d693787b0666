/* Firmware flash (devices/chipset/pflash.h): layout, OVMF's probe, the CFI command
 * state machine, persistence to the VARS file, read-only CODE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/chipset/pflash.h"
#include "fake_env.h"
#include "vmm/gm.h"

#define CODE_SZ (8 * 1024)
#define VARS_SZ (16 * 1024)
#define VARS_GPA (GM_4G - CODE_SZ - VARS_SZ)
#define CODE_GPA (GM_4G - CODE_SZ)

static struct fake_env fe;
static struct pflash *pf;
static char dir[] = "/tmp/minivmm-pflash-XXXXXX";
static char code_path[PATH_MAX], tmpl_path[PATH_MAX], vars_path[PATH_MAX];

static void write_file(const char *path, uint8_t fill0, uint8_t fill, size_t len)
{
    uint8_t *b = malloc(len);
    memset(b, fill, len);
    memset(b, fill0, 16);       /* like an FV header's zero vector */
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
    free(b);
}

static void pf_setup(void)
{
    fake_env_init(&fe);
    strcpy(dir, "/tmp/minivmm-pflash-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(code_path, sizeof(code_path), "%s/CODE.fd", dir);
    snprintf(tmpl_path, sizeof(tmpl_path), "%s/VARS.fd", dir);
    snprintf(vars_path, sizeof(vars_path), "%s/state/vm.vars", dir);
    write_file(code_path, 0xC0, 0xC1, CODE_SZ);
    write_file(tmpl_path, 0x00, 0x5A, VARS_SZ);
    struct pflash_config c = { .code_path = code_path, .vars_path = vars_path,
                               .vars_template = tmpl_path };
    cr_assert_eq(pflash_create(&fe.env, &c, &pf), 0);
}

static void pf_teardown(void)
{
    pflash_destroy(pf);
    fake_env_fini(&fe);
    unlink(vars_path);
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/state", dir);
    rmdir(sub);
    unlink(code_path);
    unlink(tmpl_path);
    rmdir(dir);
}

TestSuite(pflash, .init = pf_setup, .fini = pf_teardown);

static uint8_t rd(uint64_t a)
{
    uint8_t b;
    cr_assert_eq(bus_read(&fe.mmio, a, &b, 1), 0, "nothing at 0x%llx", (unsigned long long)a);
    return b;
}
static void wr(uint64_t a, uint8_t v) { cr_assert_eq(bus_write(&fe.mmio, a, &v, 1), 0); }

static uint8_t file_byte(const char *path, off_t off)
{
    uint8_t b = 0;
    int fd = open(path, O_RDONLY);
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    close(fd);
    return b;
}

Test(pflash, layout_at_top_of_4g)
{
    uint64_t gpa, size;
    uint8_t *hva;
    pflash_region(pf, PFLASH_CODE, &gpa, &hva, &size);
    cr_assert_eq(gpa, CODE_GPA);
    cr_assert_eq(size, CODE_SZ);
    cr_assert_eq(hva[20], 0xC1);
    cr_assert_eq(((uintptr_t)hva) % 4096, 0, "page-aligned for a memory slot");
    pflash_region(pf, PFLASH_VARS, &gpa, &hva, &size);
    cr_assert_eq(gpa, VARS_GPA);
    cr_assert_eq(rd(CODE_GPA), 0xC0);
    cr_assert_eq(rd(GM_4G - 1), 0xC1);
    cr_assert_eq(rd(VARS_GPA + 20), 0x5A);
    /* the VARS copy was made from the template */
    cr_assert_eq(file_byte(vars_path, 20), 0x5A);
}

Test(pflash, ovmf_probe_says_flash)
{
    /* QemuFlashDetected: find a byte that is not 0x00/0x50/0x70 */
    uint64_t p = VARS_GPA;
    while (rd(p) == 0x00 || rd(p) == 0x50 || rd(p) == 0x70)
        p++;
    uint8_t orig = rd(p);
    cr_assert_eq(orig, 0x5A);
    wr(p, 0x50);
    cr_assert_eq(rd(p), orig, "clear status leaves read-array: not RAM");
    wr(p, 0x70);
    cr_assert_eq(rd(p), 0x00, "cleared status: FD behaves as FLASH");
    wr(p, 0xFF);
    cr_assert_eq(rd(p), orig);
}

Test(pflash, program_and_persist)
{
    /* QemuFlashWrite: 0x10 + data per byte, then 0xFF */
    const uint8_t msg[] = { 'B', 'o', 'o', 't' };
    for (unsigned i = 0; i < sizeof(msg); i++) {
        wr(VARS_GPA + 0x100 + i, 0x10);
        cr_assert_eq(rd(VARS_GPA + 0x100 + i) & 0x80, 0x80, "status while programming");
        wr(VARS_GPA + 0x100 + i, msg[i]);
    }
    cr_assert_eq(rd(VARS_GPA + 0x100), 0x80, "status after the program");
    wr(VARS_GPA + 0x103, 0xFF);
    for (unsigned i = 0; i < sizeof(msg); i++) {
        cr_assert_eq(rd(VARS_GPA + 0x100 + i), msg[i]);
        cr_assert_eq(file_byte(vars_path, 0x100 + i), msg[i], "written back to the file");
    }
    cr_assert_eq(file_byte(tmpl_path, 0x100), 0x5A, "the template is untouched");
    /* a restart reads the variables back */
    pflash_destroy(pf);
    struct pflash_config c = { .code_path = code_path, .vars_path = vars_path,
                               .vars_template = tmpl_path };
    cr_assert_eq(pflash_create(&fe.env, &c, &pf), 0);
    cr_assert_eq(rd(VARS_GPA + 0x101), 'o');
}

Test(pflash, block_erase)
{
    wr(VARS_GPA + 0x1234, 0x20);
    wr(VARS_GPA + 0x1234, 0xD0);
    cr_assert_eq(rd(VARS_GPA), 0x80);
    wr(VARS_GPA, 0xFF);
    cr_assert_eq(rd(VARS_GPA + 0x1000), 0xFF, "block 1 erased");
    cr_assert_eq(rd(VARS_GPA + 0x1FFF), 0xFF);
    cr_assert_eq(rd(VARS_GPA + 0x0FFF), 0x5A, "block 0 kept");
    cr_assert_eq(rd(VARS_GPA + 0x2000), 0x5A, "block 2 kept");
    cr_assert_eq(file_byte(vars_path, 0x1800), 0xFF);
    /* a bad confirm is a sequence error and erases nothing */
    wr(VARS_GPA + 0x2000, 0x20);
    wr(VARS_GPA + 0x2000, 0x33);
    cr_assert_eq(rd(VARS_GPA) & 0x30, 0x30);
    wr(VARS_GPA, 0x50);
    cr_assert_eq(rd(VARS_GPA + 0x2000), 0x5A);
    wr(VARS_GPA, 0x70);
    cr_assert_eq(rd(VARS_GPA), 0x00, "cleared");
    wr(VARS_GPA, 0xFF);
}

Test(pflash, cfi_query_and_id)
{
    wr(VARS_GPA, 0x98);
    cr_assert_eq(rd(VARS_GPA + 0x10), 'Q');
    cr_assert_eq(rd(VARS_GPA + 0x11), 'R');
    cr_assert_eq(rd(VARS_GPA + 0x12), 'Y');
    cr_assert_eq(rd(VARS_GPA + 0x13), 0x01, "Intel command set");
    cr_assert_eq(rd(VARS_GPA + 0x27), 14, "16 KiB");
    cr_assert_eq(rd(VARS_GPA + 0x2C), 1);
    cr_assert_eq(rd(VARS_GPA + 0x2D) | rd(VARS_GPA + 0x2E) << 8, VARS_SZ / 4096 - 1);
    cr_assert_eq(rd(VARS_GPA + 0x2F) | rd(VARS_GPA + 0x30) << 8, 4096 / 256);
    cr_assert_eq(rd(VARS_GPA + 0x31), 'P');
    wr(VARS_GPA, 0x90);
    cr_assert_eq(rd(VARS_GPA), 0x89);
    cr_assert_eq(rd(VARS_GPA + 1), 0x18);
    wr(VARS_GPA, 0xFF);
    cr_assert_eq(rd(VARS_GPA + 0x10), 0x5A, "array again");
}

Test(pflash, code_refuses_writes)
{
    wr(CODE_GPA + 0x100, 0x10);
    wr(CODE_GPA + 0x100, 0x00);
    wr(CODE_GPA + 0x200, 0x20);
    wr(CODE_GPA + 0x200, 0xD0);
    cr_assert_eq(rd(CODE_GPA + 0x100), 0xC1);
    cr_assert_eq(rd(CODE_GPA + 0x200), 0xC1);
    cr_assert_eq(file_byte(code_path, 0x100), 0xC1);
}

Test(pflash, writes_past_the_end_are_dropped)
{
    uint8_t b[8] = { 0 };
    /* an 8-byte program that would cross from VARS into CODE */
    wr(GM_4G - CODE_SZ - 4, 0x10);
    cr_assert_neq(bus_write(&fe.mmio, GM_4G - CODE_SZ - 4, b, 8), 0, "straddles two ranges");
    wr(GM_4G - CODE_SZ - 4, 0xAA);
    wr(GM_4G - CODE_SZ - 4, 0xFF);
    cr_assert_eq(rd(GM_4G - CODE_SZ - 4), 0xAA);
    cr_assert_eq(rd(CODE_GPA), 0xC0);
}

Test(pflash_files, missing_and_bad_images)
{
    struct fake_env f;
    struct pflash *p = NULL;
    char d[] = "/tmp/minivmm-pflash2-XXXXXX", cp[PATH_MAX], vp[PATH_MAX], tp[PATH_MAX];
    fake_env_init(&f);
    cr_assert_not_null(mkdtemp(d));
    snprintf(cp, sizeof(cp), "%s/CODE.fd", d);
    snprintf(vp, sizeof(vp), "%s/vm.vars", d);
    snprintf(tp, sizeof(tp), "%s/T.fd", d);
    struct pflash_config c = { .code_path = cp, .vars_path = vp, .vars_template = tp };
    cr_assert_eq(pflash_create(&f.env, &c, &p), -ENOENT, "no firmware");
    write_file(cp, 0, 1, 5000);
    write_file(tp, 0, 1, 8192);
    cr_assert_eq(pflash_create(&f.env, &c, &p), -EINVAL, "not a multiple of 4 KiB");
    write_file(cp, 0, 1, 8192);
    unlink(tp);
    cr_assert_eq(pflash_create(&f.env, &c, &p), -ENOENT, "no VARS and no template");
    struct pflash_config c2 = { .code_path = cp };
    cr_assert_eq(pflash_create(&f.env, &c2, &p), -EINVAL, "no --vars");
    cr_assert_null(bus_find(&f.mmio, GM_4G - 1, 1), "nothing left registered");
    unlink(cp);
    rmdir(d);
    fake_env_fini(&f);
}

Test(pflash_files, default_vars_path)
{
    char p[256];
    setenv("XDG_STATE_HOME", "/var/tmp/st", 1);
    cr_assert_eq(pflash_default_vars_path("win11", p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/var/tmp/st/minivmm/win11.vars");
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/u", 1);
    cr_assert_eq(pflash_default_vars_path("win11", p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/home/u/.local/state/minivmm/win11.vars");
    cr_assert_eq(pflash_default_vars_path("../x", p, sizeof(p)), -EINVAL);
    cr_assert_eq(pflash_default_vars_path("", p, sizeof(p)), -EINVAL);
    cr_assert_eq(pflash_default_vars_path("win11", p, 10), -ENAMETOOLONG);
}
