package org.gradeflow.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * The local file system without forking: Hadoop's RawLocalFileSystem runs
 * {@code chmod} and {@code ls} in child processes to set and read
 * permissions when libhadoop is missing, and the JVM that runs a Java submission may not create
 * processes (gradeflow's guard.py seccomp filter). This one sets them with
 * java.nio instead. Configured as fs.file.impl in core-site.xml.
 */
public class NoForkLocalFileSystem extends LocalFileSystem {
  public NoForkLocalFileSystem() {
    super(new Raw());
  }

  /** RawLocalFileSystem with permissions set through java.nio. */
  public static class Raw extends RawLocalFileSystem {
    private static final PosixFilePermission[] BITS = {
      PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
      PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
    };

    @Override
    public void setPermission(Path p, FsPermission permission) throws IOException {
      short mode = permission.toShort();
      Set<PosixFilePermission> set = EnumSet.noneOf(PosixFilePermission.class);
      for (int i = 0; i < BITS.length; i++) {
        if ((mode & (1 << i)) != 0) {
          set.add(BITS[i]);
        }
      }
      Files.setPosixFilePermissions(pathToFile(p).toPath(), set);
    }

    @Override
    public FileStatus getFileStatus(Path f) throws IOException {
      return withNio(super.getFileStatus(f));
    }

    @Override
    public FileStatus getFileLinkStatus(Path f) throws IOException {
      return withNio(super.getFileLinkStatus(f));
    }

    @Override
    public FileStatus[] listStatus(Path f) throws IOException {
      FileStatus[] all = super.listStatus(f);
      if (all != null) {
        for (int i = 0; i < all.length; i++) {
          all[i] = withNio(all[i]);
        }
      }
      return all;
    }

    /** A copy of st whose permission, owner and group come from java.nio. */
    private FileStatus withNio(FileStatus st) throws IOException {
      if (st == null || st.isSymlink()) {
        return st;
      }
      PosixFileAttributes a = Files.readAttributes(pathToFile(st.getPath()).toPath(),
          PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
      int mode = 0;
      for (int i = 0; i < BITS.length; i++) {
        if (a.permissions().contains(BITS[i])) {
          mode |= 1 << i;
        }
      }
      return new FileStatus(st.getLen(), st.isDirectory(), st.getReplication(), st.getBlockSize(),
          st.getModificationTime(), st.getAccessTime(), new FsPermission((short) mode),
          a.owner().getName(), a.group().getName(), st.getPath());
    }
  }
}
