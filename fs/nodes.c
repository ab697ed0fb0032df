// SPDX-License-Identifier: MIT
/*
 * nodes.c - the kernel's lookup count per inode.
 *
 * Every entry reply (lookup, create, mkdir, readdirplus, ...) gives the kernel one reference to a
 * node id; forget returns them. The store keeps inodes alive by itself while they have names or
 * open handles, so the table only accounts for the kernel's references - and remembers the name
 * each node was last handed out under, so that a failure on an inode (a read hitting a corrupt
 * chunk) can be logged with the file's path, not just its number.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/fs_priv.h"

struct fs_node {
	struct fs_node *next;
	uint64_t ino;
	uint64_t nlookup;
	uint64_t parent; /* where it was last looked up (0: unknown) */
	char *name;
};

/* Deepest path fs_nodes_path() reconstructs; deeper ones start with ".../". */
#define FS_NODES_MAX_DEPTH 64

#define FS_NODES_MIN_BUCKETS 1024u

static size_t bucket_of(uint64_t ino, size_t nbuckets)
{
	/* Inode numbers are mostly sequential: spread them with a multiplicative hash. */
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (nbuckets - 1);
}

int fs_nodes_init(struct fs_ctx *ctx)
{
	ctx->node_buckets = calloc(FS_NODES_MIN_BUCKETS, sizeof(*ctx->node_buckets));
	if (!ctx->node_buckets)
		return -ENOMEM;
	ctx->node_nbuckets = FS_NODES_MIN_BUCKETS;
	ctx->node_count = 0;
	return pthread_mutex_init(&ctx->nodes_lock, NULL) == 0 ? 0 : -ENOMEM;
}

void fs_nodes_free(struct fs_ctx *ctx)
{
	if (!ctx->node_buckets)
		return;
	for (size_t i = 0; i < ctx->node_nbuckets; i++) {
		struct fs_node *n = ctx->node_buckets[i];
		while (n) {
			struct fs_node *next = n->next;
			free(n->name);
			free(n);
			n = next;
		}
	}
	free(ctx->node_buckets);
	ctx->node_buckets = NULL;
	pthread_mutex_destroy(&ctx->nodes_lock);
}

/* Called with nodes_lock held. Failure to grow only makes chains longer. */
static void nodes_grow(struct fs_ctx *ctx)
{
	size_t nb = ctx->node_nbuckets * 2;
	struct fs_node **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < ctx->node_nbuckets; i++) {
		struct fs_node *n = ctx->node_buckets[i];
		while (n) {
			struct fs_node *next = n->next;
			size_t j = bucket_of(n->ino, nb);
			n->next = b[j];
			b[j] = n;
			n = next;
		}
	}
	free(ctx->node_buckets);
	ctx->node_buckets = b;
	ctx->node_nbuckets = nb;
}

static struct fs_node **nodes_find(struct fs_ctx *ctx, uint64_t ino)
{
	struct fs_node **pp = &ctx->node_buckets[bucket_of(ino, ctx->node_nbuckets)];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

/* Called with nodes_lock held. A name that cannot be copied is dropped: it only feeds logs. */
static void node_set_name(struct fs_node *node, uint64_t parent, const char *name)
{
	if (!name || (node->parent == parent && node->name && !strcmp(node->name, name)))
		return;
	free(node->name);
	node->name = strdup(name);
	node->parent = node->name ? parent : 0;
}

void fs_nodes_ref(struct fs_ctx *ctx, uint64_t ino, uint64_t n, uint64_t parent, const char *name)
{
	struct fs_node **pp;

	/* The root is never forgotten by the kernel's accounting; don't track it. */
	if (ino == FUSE_ROOT_ID || n == 0)
		return;
	pthread_mutex_lock(&ctx->nodes_lock);
	pp = nodes_find(ctx, ino);
	if (*pp) {
		(*pp)->nlookup += n;
		node_set_name(*pp, parent, name);
	} else {
		struct fs_node *node = calloc(1, sizeof(*node));
		/* Without memory the count is lost; forget of an unknown node is tolerated. */
		if (node) {
			node->ino = ino;
			node->nlookup = n;
			node_set_name(node, parent, name);
			*pp = node;
			if (++ctx->node_count > ctx->node_nbuckets * 2)
				nodes_grow(ctx);
		}
	}
	pthread_mutex_unlock(&ctx->nodes_lock);
}

void fs_nodes_rename(struct fs_ctx *ctx, uint64_t ino, uint64_t parent, const char *name)
{
	struct fs_node **pp;

	pthread_mutex_lock(&ctx->nodes_lock);
	pp = nodes_find(ctx, ino);
	if (*pp)
		node_set_name(*pp, parent, name);
	pthread_mutex_unlock(&ctx->nodes_lock);
}

void fs_nodes_path(struct fs_ctx *ctx, uint64_t ino, char *buf, size_t size)
{
	const char *parts[FS_NODES_MAX_DEPTH];
	size_t depth = 0, len = 0;
	bool truncated = false;

	if (size == 0)
		return;
	pthread_mutex_lock(&ctx->nodes_lock);
	while (ino != FUSE_ROOT_ID) {
		struct fs_node **pp = nodes_find(ctx, ino);
		if (!*pp || !(*pp)->name || depth == FS_NODES_MAX_DEPTH) {
			truncated = true;
			break;
		}
		parts[depth++] = (*pp)->name;
		ino = (*pp)->parent;
	}
	/* Names are copied out before the lock is dropped: a forget may free them. */
	len = (size_t)snprintf(buf, size, "%s", truncated ? "..." : "");
	while (depth > 0 && len < size)
		len += (size_t)snprintf(buf + len, size - len, "/%s", parts[--depth]);
	if (len == 0 && size > 1)
		snprintf(buf, size, "/");
	pthread_mutex_unlock(&ctx->nodes_lock);
}

void fs_nodes_unref(struct fs_ctx *ctx, uint64_t ino, uint64_t n)
{
	struct fs_node **pp;

	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&ctx->nodes_lock);
	pp = nodes_find(ctx, ino);
	if (!*pp) {
		log_debug("forget of inode %llu that the daemon never handed out",
			  (unsigned long long)ino);
	} else if ((*pp)->nlookup <= n) {
		struct fs_node *dead = *pp;
		if (dead->nlookup < n)
			log_debug("inode %llu: kernel forgot %llu references, it held %llu",
				  (unsigned long long)ino, (unsigned long long)n,
				  (unsigned long long)dead->nlookup);
		*pp = dead->next;
		free(dead->name);
		free(dead);
		ctx->node_count--;
	} else {
		(*pp)->nlookup -= n;
	}
	pthread_mutex_unlock(&ctx->nodes_lock);
}
