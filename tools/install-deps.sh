#!/usr/bin/env bash
# Installs the Debian 12 packages ckptfs needs to build, test and benchmark. Run as root.
set -euo pipefail
pkgs=(
	meson ninja-build pkg-config gcc
	libfuse3-dev fuse3 liblmdb-dev lmdb-utils libzstd-dev zstd libxxhash-dev
	fio attr python3 perl clang-format
	bash-builtins tcl
	squashfuse fuse-overlayfs squashfs-tools
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
