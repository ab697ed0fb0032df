// SPDX-License-Identifier: MIT
/*
 * wl_avx - CPU register state that lives only in registers: xmm/ymm (and zmm0-31 and the
 * opmask registers k1-k7 when the CPU has AVX-512), MXCSR with a non-default rounding mode,
 * and callee-saved general registers. One asm block loads known values, spins without any
 * system call until the SIGTERM handler sets a flag (the dump interrupts it in user space),
 * then stores every register so C can compare. The signal handler cannot disturb them: the
 * kernel saves and restores the whole xstate around it.
 * Usage: wl_avx SCRATCH_DIR
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wl_common.h"

#define NGP 5

static uint8_t vin[32 * 64] __attribute__((aligned(64)));
static uint8_t vout[32 * 64] __attribute__((aligned(64)));
static uint64_t kin[8], kout[8];
static uint64_t gp_out[NGP];
static const uint64_t gp_in[NGP] = {0x1122334455667788ULL, 0x0123456789abcdefULL,
				    0xfedcba9876543210ULL, 0xdeadbeefcafef00dULL,
				    0x5a5a5a5aa5a5a5a5ULL};
static uint32_t mxcsr_in = 0x1f80 | (3u << 13), mxcsr_out; /* all masked, round toward zero */
static volatile int spin_stop;

static void on_term(int sig)
{
	wl_stop = 1;
	spin_stop = 1;
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* 0: SSE only, 1: AVX (ymm), 2: AVX-512F+BW (zmm, k). */
static int vector_level(void)
{
	unsigned int a, b, c, d;
	uint64_t xcr0;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
		return 0;
	xcr0 = xgetbv0();
	if ((xcr0 & 0x6) != 0x6)
		return 0;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX512F) && (b & bit_AVX512BW) &&
	    (xcr0 & 0xe0) == 0xe0)
		return 2;
	return 1;
}

#define GP_LOAD                                                                                    \
	"movabs $0x1122334455667788, %%rbx\n\t"                                                    \
	"movabs $0x0123456789abcdef, %%r12\n\t"                                                    \
	"movabs $0xfedcba9876543210, %%r13\n\t"                                                    \
	"movabs $0xdeadbeefcafef00d, %%r14\n\t"                                                    \
	"movabs $0x5a5a5a5aa5a5a5a5, %%r15\n\t"
#define GP_STORE                                                                                   \
	"mov %%rbx, 0(%[gp])\n\t"                                                                  \
	"mov %%r12, 8(%[gp])\n\t"                                                                  \
	"mov %%r13, 16(%[gp])\n\t"                                                                 \
	"mov %%r14, 24(%[gp])\n\t"                                                                 \
	"mov %%r15, 32(%[gp])\n\t"
#define SPIN                                                                                       \
	"1: pause\n\t"                                                                             \
	"cmpl $0, %[stop]\n\t"                                                                     \
	"je 1b\n\t"

#define R4(m, a, b, c, d) m(a) m(b) m(c) m(d)
#define R16(m)		  R4(m, 0, 1, 2, 3) R4(m, 4, 5, 6, 7) R4(m, 8, 9, 10, 11) R4(m, 12, 13, 14, 15)
#define R16HI(m)                                                                                   \
	R4(m, 16, 17, 18, 19) R4(m, 20, 21, 22, 23) R4(m, 24, 25, 26, 27) R4(m, 28, 29, 30, 31)

#define X_LD(n) "movdqu " #n "*16(%[in]), %%xmm" #n "\n\t"
#define X_ST(n) "movdqu %%xmm" #n ", " #n "*16(%[out])\n\t"
#define Y_LD(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define Y_ST(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
#define Z_LD(n) "vmovdqu64 " #n "*64(%[in]), %%zmm" #n "\n\t"
#define Z_ST(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[out])\n\t"
#define K_LD(n) "kmovq " #n "*8(%[kin]), %%k" #n "\n\t"
#define K_ST(n) "kmovq %%k" #n ", " #n "*8(%[kout])\n\t"

#define XCLOB(n)    "xmm" #n,
#define CLOBBERS_GP "rbx", "r12", "r13", "r14", "r15", "memory", "cc"

/* Whole asm bodies: load, spin until SIGTERM, store. */
#define SSE_BODY                                                                                   \
	"ldmxcsr %[mxin]\n\t" GP_LOAD R16(X_LD)                                                    \
	SPIN R16(X_ST) GP_STORE "stmxcsr %[mxout]\n\t"
#define AVX_BODY                                                                                   \
	"ldmxcsr %[mxin]\n\t" GP_LOAD R16(Y_LD)                                                    \
	SPIN R16(Y_ST) GP_STORE "stmxcsr %[mxout]\n\t"                                             \
				"vzeroupper\n\t"
#define K_LOADS	 R4(K_LD, 1, 2, 3, 4) K_LD(5) K_LD(6) K_LD(7)
#define K_STORES R4(K_ST, 1, 2, 3, 4) K_ST(5) K_ST(6) K_ST(7)
#define AVX512_BODY                                                                                \
	"ldmxcsr %[mxin]\n\t" GP_LOAD R16(Z_LD) R16HI(Z_LD) K_LOADS SPIN R16(Z_ST) R16HI(Z_ST)     \
		K_STORES GP_STORE "stmxcsr %[mxout]\n\t"                                           \
				  "vzeroupper\n\t"
#define COMMON_IN                                                                                  \
	[in] "r"(vin), [out] "r"(vout), [gp] "r"(gp_out), [stop] "m"(spin_stop),                   \
		[mxin] "m"(mxcsr_in)

static void spin_sse(void)
{
	__asm__ volatile(SSE_BODY : [mxout] "=m"(mxcsr_out) : COMMON_IN : R16(XCLOB) CLOBBERS_GP);
}

__attribute__((target("avx"))) static void spin_avx(void)
{
	__asm__ volatile(AVX_BODY : [mxout] "=m"(mxcsr_out) : COMMON_IN : R16(XCLOB) CLOBBERS_GP);
}

__attribute__((target("avx512f,avx512bw"))) static void spin_avx512(void)
{
	__asm__ volatile(AVX512_BODY
			 : [mxout] "=m"(mxcsr_out)
			 : COMMON_IN, [kin] "r"(kin), [kout] "r"(kout)
			 : R16(XCLOB) R16HI(XCLOB) "k1", "k2", "k3", "k4", "k5", "k6", "k7",
			   CLOBBERS_GP);
}

int main(int argc, char **argv)
{
	static const char *names[] = {"xmm", "ymm", "zmm"};
	static const size_t widths[] = {16, 32, 64};
	int level = vector_level(), nregs = level == 2 ? 32 : 16;
	size_t width = widths[level];
	struct sigaction sa = {.sa_handler = on_term};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	wl_fill(vin, sizeof(vin), 1);
	wl_fill(kin, sizeof(kin), 2);
	memset(vout, 0, sizeof(vout));
	wl_say("vector registers: %d x %s", nregs, names[level]);
	wl_ready();
	if (level == 2)
		spin_avx512();
	else if (level == 1)
		spin_avx();
	else
		spin_sse();

	for (int r = 0; r < nregs; r++)
		if (memcmp(vin + (size_t)r * width, vout + (size_t)r * width, width))
			wl_fail("%s%d lost its value", names[level], r);
	if (level == 2)
		for (int k = 1; k < 8; k++)
			if (kin[k] != kout[k])
				wl_fail("k%d is %#llx, expected %#llx", k,
					(unsigned long long)kout[k], (unsigned long long)kin[k]);
	if (mxcsr_out != mxcsr_in)
		wl_fail("MXCSR is %#x, expected %#x", mxcsr_out, mxcsr_in);
	for (int i = 0; i < NGP; i++)
		if (gp_out[i] != gp_in[i])
			wl_fail("general register %d is %#llx, expected %#llx", i,
				(unsigned long long)gp_out[i], (unsigned long long)gp_in[i]);
	return wl_finish();
}
