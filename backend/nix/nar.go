package nix

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// The Nix archive (NAR) format, written the way nix-store --dump writes
// it: the deployer serializes store paths itself instead of running one
// nix-store --export per host. The host checks every path it receives
// against the NAR hash the deployer's store recorded, so a corrupted local
// path is refused there, as nix-copy-closure's would be.

// narWriter writes the NAR framing: strings are a little-endian length and
// the bytes, padded with zeros to a multiple of 8.
type narWriter struct {
	w   io.Writer
	n   int64
	err error
	buf []byte
}

var zeros [8]byte

func (nw *narWriter) write(p []byte) {
	if nw.err != nil {
		return
	}
	n, err := nw.w.Write(p)
	nw.n += int64(n)
	nw.err = err
}

func (nw *narWriter) num(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	nw.write(b[:])
}

func (nw *narWriter) pad(n int64) {
	if r := n % 8; r != 0 {
		nw.write(zeros[:8-r])
	}
}

func (nw *narWriter) str(s string) {
	nw.num(uint64(len(s)))
	nw.write([]byte(s))
	nw.pad(int64(len(s)))
}

// writeNAR writes the archive of path (a file, directory or symlink) to w
// and returns its size in bytes.
func writeNAR(w io.Writer, path string) (int64, error) {
	return (&narWriter{w: w}).nar(path)
}

// nar writes the archive of path and returns its size.
func (nw *narWriter) nar(path string) (int64, error) {
	start := nw.n
	nw.str("nix-archive-1")
	err := nw.node(path)
	if err == nil {
		err = nw.err
	}
	return nw.n - start, err
}

func (nw *narWriter) node(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	nw.str("(")
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		nw.str("type")
		nw.str("regular")
		if mode.Perm()&0o100 != 0 {
			nw.str("executable")
			nw.str("")
		}
		if err := nw.contents(path, fi.Size()); err != nil {
			return err
		}
	case mode.IsDir():
		nw.str("type")
		nw.str("directory")
		names, err := readNames(path)
		if err != nil {
			return err
		}
		for _, name := range names {
			nw.str("entry")
			nw.str("(")
			nw.str("name")
			nw.str(name)
			nw.str("node")
			if err := nw.node(filepath.Join(path, name)); err != nil {
				return err
			}
			nw.str(")")
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		nw.str("type")
		nw.str("symlink")
		nw.str("target")
		nw.str(target)
	default:
		return fmt.Errorf("%s: a %s cannot be archived", path, mode.Type())
	}
	nw.str(")")
	return nw.err
}

// readNames lists a directory's entries in byte order, as Nix sorts them.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func (nw *narWriter) contents(path string, size int64) error {
	nw.str("contents")
	nw.num(uint64(size))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if nw.buf == nil {
		nw.buf = make([]byte, 64<<10)
	}
	left := size
	for left > 0 && nw.err == nil {
		chunk := nw.buf
		if int64(len(chunk)) > left {
			chunk = chunk[:left]
		}
		if _, err := io.ReadFull(f, chunk); err != nil {
			return fmt.Errorf("%s changed while it was archived: %w", path, err)
		}
		nw.write(chunk)
		left -= int64(len(chunk))
	}
	nw.pad(size)
	return nw.err
}
