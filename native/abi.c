// The int64 stat layout of native/guard-abi.h, both ways: our addon fills it from lstat, the
// binding reads it from a JS getattr handler's answer.
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include "guard-abi.h"

void rg_stat_to_slots (int64_t *v, const struct stat *st) {
  v[RG_ST_mode] = st->st_mode; v[RG_ST_uid] = st->st_uid; v[RG_ST_gid] = st->st_gid; v[RG_ST_size] = st->st_size;
  v[RG_ST_dev] = (int64_t) st->st_dev; v[RG_ST_nlink] = (int64_t) st->st_nlink; v[RG_ST_ino] = (int64_t) st->st_ino;
  v[RG_ST_rdev] = (int64_t) st->st_rdev; v[RG_ST_blksize] = st->st_blksize; v[RG_ST_blocks] = st->st_blocks;
  v[RG_ST_atimeSec] = st->st_atim.tv_sec; v[RG_ST_atimeNsec] = st->st_atim.tv_nsec;
  v[RG_ST_mtimeSec] = st->st_mtim.tv_sec; v[RG_ST_mtimeNsec] = st->st_mtim.tv_nsec;
  v[RG_ST_ctimeSec] = st->st_ctim.tv_sec; v[RG_ST_ctimeNsec] = st->st_ctim.tv_nsec;
}

void rg_slots_to_stat (const int64_t *v, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_mode = v[RG_ST_mode]; st->st_uid = v[RG_ST_uid]; st->st_gid = v[RG_ST_gid]; st->st_size = v[RG_ST_size];
  st->st_dev = v[RG_ST_dev]; st->st_nlink = v[RG_ST_nlink]; st->st_ino = v[RG_ST_ino];
  st->st_rdev = v[RG_ST_rdev]; st->st_blksize = v[RG_ST_blksize]; st->st_blocks = v[RG_ST_blocks];
  st->st_atim.tv_sec = v[RG_ST_atimeSec]; st->st_atim.tv_nsec = v[RG_ST_atimeNsec];
  st->st_mtim.tv_sec = v[RG_ST_mtimeSec]; st->st_mtim.tv_nsec = v[RG_ST_mtimeNsec];
  st->st_ctim.tv_sec = v[RG_ST_ctimeSec]; st->st_ctim.tv_nsec = v[RG_ST_ctimeNsec];
}
