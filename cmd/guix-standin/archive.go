package main

// guix archive, in a STAND-IN format: a tar stream whose first entry,
// "guix-standin-archive", names the exporting key; then, for each store item
// in dependency order, the item's files under its base name followed by an
// entry ".meta/BASENAME" holding its deriver and references, which commits
// the item. Nothing is signed: import only checks that the exporting key is
// in the importing host's ACL, which is what makes `guix archive
// --authorize` necessary, as with Guix.

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const archiveMagic = "guix-standin-archive"

func archive(l layout, args []string) error {
	if len(args) == 0 {
		return errors.New("archive: missing action")
	}
	switch args[0] {
	case "--export":
		rest := args[1:]
		recursive := false
		if len(rest) > 0 && (rest[0] == "-r" || rest[0] == "--recursive") {
			recursive, rest = true, rest[1:]
		}
		return export(l, rest, recursive, os.Stdout)
	case "--import":
		return importArchive(l, os.Stdin)
	case "--generate-key":
		_, err := l.signingKey()
		return err
	case "--missing":
		for _, p := range readLines(os.Stdin) {
			if !l.valid(p) {
				fmt.Println(p)
			}
		}
		return nil
	case "--authorize":
		key, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		k := strings.TrimSpace(string(key))
		if !strings.HasPrefix(k, "(public-key") {
			return errors.New("archive --authorize: standard input is not a public key")
		}
		for _, a := range l.acl() {
			if a == k {
				return nil
			}
		}
		if err := os.MkdirAll(l.own(), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(l.own()+"/acl", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, k)
		return err
	}
	return fmt.Errorf("archive %s: not implemented by the stand-in", args[0])
}

func (l layout) acl() []string {
	b, _ := os.ReadFile(l.own() + "/acl")
	var keys []string
	for _, k := range strings.Split(string(b), "\n") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// signingKey returns this machine's public key, making a key pair on first
// use as guix-daemon does when it starts.
func (l layout) signingKey() (string, error) {
	pub := l.etc() + "/signing-key.pub"
	if b, err := os.ReadFile(pub); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	q := make([]byte, 32)
	if _, err := rand.Read(q); err != nil {
		return "", err
	}
	key := fmt.Sprintf("(public-key (ecc (curve Ed25519) (q #%s#)))", strings.ToUpper(hex.EncodeToString(q)))
	if err := writeAtomic(l.etc()+"/signing-key.sec", []byte("(stand-in key: no secret)\n"), 0o600); err != nil {
		return "", err
	}
	return key, writeAtomic(pub, []byte(key+"\n"), 0o644)
}

func export(l layout, paths []string, recursive bool, w io.Writer) error {
	for _, p := range paths {
		if !l.valid(p) {
			return fmt.Errorf("archive --export: path %q is not valid", p)
		}
	}
	var items []string
	var err error
	if recursive {
		items, err = l.closure(paths)
	} else {
		items, err = l.topo(paths)
	}
	if err != nil {
		return err
	}
	key, err := l.signingKey()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	tw := tar.NewWriter(bw)
	if err := tarFile(tw, archiveMagic, []byte("signer "+key+"\n")); err != nil {
		return err
	}
	for _, p := range items {
		in, err := l.info(p)
		if err != nil {
			return err
		}
		base := filepath.Base(p)
		err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(l.store(), f)
			fi, err := os.Lstat(f)
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(f); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			h.Name, h.Uid, h.Gid, h.Uname, h.Gname = rel, 0, 0, "", ""
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				_, err = tw.Write(b)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		meta := "deriver " + in.deriver + "\n"
		for _, r := range in.refs {
			meta += "ref " + r + "\n"
		}
		if err := tarFile(tw, ".meta/"+base, []byte(meta)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func tarFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func importArchive(l layout, r io.Reader) error {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil || h.Name != archiveMagic {
		return errors.New("archive --import: input is not a stand-in archive")
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return err
	}
	signer := strings.TrimSpace(strings.TrimPrefix(string(b), "signer "))
	trusted := false
	for _, k := range l.acl() {
		trusted = trusted || k == signer
	}
	if !trusted {
		return fmt.Errorf("archive --import: unauthorized public key: %s", signer)
	}
	if err := os.MkdirAll(l.store(), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(l.store(), ".import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive --import: %w", err)
		}
		if strings.HasPrefix(h.Name, ".meta/") {
			if err := commit(l, tmp, strings.TrimPrefix(h.Name, ".meta/"), tr); err != nil {
				return err
			}
			continue
		}
		if strings.Contains(h.Name, "..") {
			return fmt.Errorf("archive --import: bad entry %q", h.Name)
		}
		dst := filepath.Join(tmp, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, dst)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(h.Mode)&0o555|0o200); err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		default:
			err = fmt.Errorf("unsupported entry type %q", h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("archive --import: %s: %w", h.Name, err)
		}
	}
}

// commit moves one received item into the store and registers it.
func commit(l layout, tmp, base string, meta io.Reader) error {
	b, err := io.ReadAll(meta)
	if err != nil {
		return err
	}
	in := parseInfo(b)
	p := l.store() + "/" + base
	for _, r := range in.refs {
		if r != p && !l.valid(r) {
			return fmt.Errorf("archive --import: %s: reference %s is missing", p, r)
		}
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if l.valid(p) {
		return os.RemoveAll(filepath.Join(tmp, base))
	}
	os.RemoveAll(p)
	if err := os.Rename(filepath.Join(tmp, base), p); err != nil {
		return fmt.Errorf("archive --import: %w", err)
	}
	return l.register(p, in)
}
