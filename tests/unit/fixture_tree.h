/* Fake file trees for unit tests (sysfs, /dev, /proc under a temporary
 * root): the directory-making shared by the tests that build them. */
#ifndef MINIVMM_TESTS_FIXTURE_TREE_H
#define MINIVMM_TESTS_FIXTURE_TREE_H
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* mkdir -p root/rel (root itself exists). */
static inline void fixture_mkdirs(const char *root, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

#endif
