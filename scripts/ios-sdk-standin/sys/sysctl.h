/* Stand-in: the one declaration of Darwin's sys/sysctl.h that aws-lc uses. */
#pragma once
#include <stddef.h>
int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
