/*
 * test_keys.c: key files (read, written, refused with a message that names
 * the file and never the key) and public-key texts against the did:key
 * spec's vectors and keys made by node's Ed25519 and multiformats'
 * base58btc (tests/vectors/car/ed25519.json).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "vectors.h"

#define SEED_HEX "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

static char dir[64];

static void
mkdir_tmp(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cim-keys-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(keys, .init = mkdir_tmp, .fini = rm_tmp);

/* Writes content (n bytes) to dir/name with mode; the path in out. */
static void
put_file(const char *name, const char *content, size_t n, mode_t mode,
	 char *out)
{
	int fd;

	sprintf(out, "%s/%s", dir, name);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, n), (ssize_t)n);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 256);

	cr_assert_not_null(f);
	cr_assert_not_null(buf);
	fread(buf, 1, 255, f);
	fclose(f);
	return buf;
}

/* The file is refused with a message holding path and want, and no part
 * of the key's text. */
static void
refused(const char *path, const char *want)
{
	uint8_t key[CIM_KEY_BYTES];
	char err[512] = "";

	memset(key, 0xaa, sizeof(key));
	cr_assert_eq(cim_keyfile_read(path, key, err, sizeof(err)), -1, "%s",
		     path);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, want), "want '%s' in: %s", want, err);
	cr_assert_null(strstr(err, "9d61b1"), "key text in: %s", err);
	cr_assert_null(strstr(err, "7f60"), "key text in: %s", err);
	for (size_t i = 0; i < sizeof(key); i++)
		cr_assert_eq(key[i], 0, "key not wiped on refusal");
}

Test(keys, reads_hex_with_or_without_a_newline)
{
	char path[128];
	uint8_t key[CIM_KEY_BYTES];
	char err[256];

	put_file("a", SEED_HEX "\n", 65, 0600, path);
	cr_assert_eq(cim_keyfile_read(path, key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(key[0], 0x9d);
	cr_assert_eq(key[31], 0x60);
	put_file("b", SEED_HEX, 64, 0400, path);
	cr_assert_eq(cim_keyfile_read(path, key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(key[1], 0x61);
	put_file("c", "9D61B19DEFFD5A60BA844AF492EC2CC44449C5697B326919703BAC031CAE7F60",
		 64, 0600, path);
	cr_assert_eq(cim_keyfile_read(path, key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(key[0], 0x9d);
}

Test(keys, refuses_bad_files_naming_file_and_reason)
{
	char path[128];

	sprintf(path, "%s/none", dir);
	refused(path, "does not exist");
	refused(dir, "not a regular file");
	put_file("g", SEED_HEX "\n", 65, 0640, path);
	refused(path, "open to others than its owner (mode 0640)");
	put_file("o", SEED_HEX "\n", 65, 0604, path);
	refused(path, "mode 0604");
	put_file("w", SEED_HEX "\n", 65, 0620, path);
	refused(path, "mode 0620");
	put_file("short", SEED_HEX, 62, 0600, path);
	refused(path, "holds 62 bytes");
	put_file("empty", "", 0, 0600, path);
	refused(path, "holds 0 bytes");
	put_file("long", SEED_HEX "00\n", 67, 0600, path);
	refused(path, "more than 65 bytes");
	put_file("crlf", SEED_HEX "\r\n", 66, 0600, path);
	refused(path, "more than 65 bytes");
	put_file("twonl", SEED_HEX "\n\n", 66, 0600, path);
	refused(path, "more than 65 bytes");
	put_file("space", SEED_HEX " ", 65, 0600, path);
	refused(path, "holds 65 bytes");
	put_file("hex", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7fg0",
		 64, 0600, path);
	refused(path, "character 63 is not a hexadecimal digit");
	if (geteuid() != 0) {
		put_file("unreadable", SEED_HEX, 64, 0200, path);
		refused(path, "Permission denied");
	}
}

Test(keys, writes_a_new_file_0600_and_never_over_one)
{
	uint8_t key[CIM_KEY_BYTES], back[CIM_KEY_BYTES];
	char path[128], err[256], *text;
	struct stat st;

	for (int i = 0; i < CIM_KEY_BYTES; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	sprintf(path, "%s/new.key", dir);
	umask(0);
	cr_assert_eq(cim_keyfile_write(path, key, err, sizeof(err)), 0, "%s", err);
	umask(022);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_assert_eq(cim_keyfile_read(path, back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(key, back, sizeof(key)), 0);
	text = slurp(path);
	cr_assert_eq(strlen(text), 65);
	cr_assert_eq(strncmp(text, "01080f161d", 10), 0, "%s", text);
	free(text);

	/* again: refused, the file unchanged */
	key[0] ^= 1;
	cr_assert_eq(cim_keyfile_write(path, key, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "already exists"), "%s", err);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_eq(cim_keyfile_read(path, back, err, sizeof(err)), 0);
	cr_assert_eq(back[0], 1);

	/* nor through a symbolic link, even a dangling one */
	sprintf(path, "%s/link.key", dir);
	cr_assert_eq(symlink("/tmp/cim-keys-nowhere/x", path), 0);
	cr_assert_eq(cim_keyfile_write(path, key, err, sizeof(err)), -1);
	sprintf(path, "%s/no/such/dir.key", dir);
	cr_assert_eq(cim_keyfile_write(path, key, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

Test(keys, generate_writes_a_seed_whose_key_loads)
{
	uint8_t pk[CIM_KEY_BYTES], pk2[CIM_KEY_BYTES];
	char path[128], path2[128], err[256];
	cim_signing_key *k;

	sprintf(path, "%s/sign.key", dir);
	cr_assert_eq(cim_signing_key_generate(path, pk, err, sizeof(err)), 0,
		     "%s", err);
	k = cim_signing_key_load(path, err, sizeof(err));
	cr_assert_not_null(k, "%s", err);
	cr_assert_eq(memcmp(k->pk, pk, sizeof(pk)), 0);
	cr_assert_eq(strncmp(k->text, "z6Mk", 4), 0, "%s", k->text);
	cr_assert_eq(strlen(k->text), 48);
	cim_signing_key_free(k);
	cr_assert_eq(cim_signing_key_generate(path, pk2, err, sizeof(err)), -1);
	sprintf(path2, "%s/sign2.key", dir);
	cr_assert_eq(cim_signing_key_generate(path2, pk2, err, sizeof(err)), 0);
	cr_assert_neq(memcmp(pk, pk2, sizeof(pk)), 0, "two keys alike");
	cr_assert_null(cim_signing_key_load(dir, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	cim_signing_key_free(NULL);
}

Test(keys, did_key_spec_vectors)
{
	json_t *root = t_load_vectors("car/ed25519.json", "didkey"), *c;
	size_t i, n;

	json_array_foreach(json_object_get(root, "didkey"), i, c) {
		const char *seed = json_string_value(json_object_get(c, "seed"));
		const char *text = json_string_value(json_object_get(c, "text"));
		uint8_t *s = t_unhex(seed, &n), pk[CIM_KEY_BYTES];
		cim_signing_key k;
		char out[CIM_PUBKEY_TEXT_MAX];

		cr_assert_eq(cim_signing_key_from_seed(&k, s), 0);
		cr_assert_str_eq(k.text, text, "seed %s", seed);
		cr_assert_eq(cim_pubkey_to_text(k.pk, out), strlen(text));
		cr_assert_str_eq(out, text);
		cr_assert_eq(cim_pubkey_from_text(pk, text), 0, "%s", text);
		cr_assert_eq(memcmp(pk, k.pk, sizeof(pk)), 0);
		free(s);
	}
	cr_assert_eq(i, 5);
	json_decref(root);
}

Test(keys, random_keys_against_multiformats_base58btc)
{
	json_t *root = t_load_vectors("car/ed25519.json", "keys"), *c;
	size_t i, n;

	json_array_foreach(json_object_get(root, "keys"), i, c) {
		uint8_t *pk = t_unhex(json_string_value(json_object_get(c, "public_key")), &n);
		uint8_t *seed = t_unhex(json_string_value(json_object_get(c, "seed")), &n);
		const char *text = json_string_value(json_object_get(c, "text"));
		uint8_t back[CIM_KEY_BYTES];
		char out[CIM_PUBKEY_TEXT_MAX];
		cim_signing_key k;

		cim_pubkey_to_text(pk, out);
		cr_assert_str_eq(out, text);
		cr_assert_eq(cim_pubkey_from_text(back, text), 0);
		cr_assert_eq(memcmp(back, pk, CIM_KEY_BYTES), 0);
		cr_assert_eq(cim_signing_key_from_seed(&k, seed), 0);
		cr_assert_eq(memcmp(k.pk, pk, CIM_KEY_BYTES), 0);
		free(pk);
		free(seed);
	}
	cr_assert_geq(i, 8);
	json_decref(root);
}

Test(keys, text_parser_is_strict)
{
	static const char *const bad[] = {
		"",
		"z",
		"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
		"Z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
		"6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",   /* short */
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWpp", /* long */
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0",  /* 0 */
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWl",  /* l */
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW+",
		"z16MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", /* 0x00 first */
		/* an X25519 did:key (0xec 0x01): not a signing key */
		"z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",
		" z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
		"z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp\n",
	};
	uint8_t pk[CIM_KEY_BYTES];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cim_pubkey_from_text(pk, bad[i]), -1, "accepted '%s'",
			     bad[i]);
	cr_assert_eq(cim_pubkey_from_text(pk, NULL), -1);
	cr_assert_eq(cim_pubkey_from_text(pk, "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"), 0);
	cr_assert_eq(cim_pubkey_from_textn(pk, "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWpXYZ", 48), 0);
}

Test(keys, every_key_round_trips)
{
	uint8_t pk[CIM_KEY_BYTES], back[CIM_KEY_BYTES];
	char text[CIM_PUBKEY_TEXT_MAX];

	for (int i = 0; i < 2000; i++) {
		randombytes_buf(pk, sizeof(pk));
		if (i == 0)
			memset(pk, 0, sizeof(pk));
		if (i == 1)
			memset(pk, 0xff, sizeof(pk));
		cr_assert_eq(cim_pubkey_to_text(pk, text), 48);
		cr_assert_eq(strncmp(text, "z6Mk", 4), 0, "%s", text);
		cr_assert_eq(cim_pubkey_from_text(back, text), 0, "%s", text);
		cr_assert_eq(memcmp(pk, back, sizeof(pk)), 0);
	}
}
