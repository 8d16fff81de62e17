// GradeflowJavac.java: the warm Java compiler of gradeflow's sanity checker
// (started by serve.py as the student uid). It keeps one JVM and one file
// manager over the Hadoop jars, and compiles one submission per request with
// javax.tools, the same options as the runner's javac step (-proc:none: no
// annotation processor of the submission runs; -implicit:none). It never
// loads or runs a class it compiled.
//
// Protocol (stdin and stdout, one request at a time):
//   request:  ROOT \t FILE \t FILE ... \n   (FILEs relative to ROOT; names
//             carry no tab or newline, the worker refuses control characters)
//   answer:   RC SP N \n, then N bytes of javac's diagnostics (UTF-8), with
//             "ROOT/" taken off the file names so they read as in the runner.
// The classes go to OUT (argument 2), which is emptied before each compile,
// so no submission's classes outlive the next request.
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.BufferedReader;
import java.io.OutputStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.StandardLocation;
import javax.tools.ToolProvider;

public final class GradeflowJavac {
  private GradeflowJavac() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 2) {
      System.err.println("usage: GradeflowJavac CLASSPATH OUTDIR");
      System.exit(2);
    }
    OutputStream answers = System.out;
    System.setOut(System.err); // nothing but answers on the channel
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    StandardJavaFileManager fm = javac.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8);
    List<java.io.File> cp = new ArrayList<>();
    for (String e : args[0].split(":")) {
      if (!e.isEmpty()) {
        cp.add(new java.io.File(e));
      }
    }
    fm.setLocation(StandardLocation.CLASS_PATH, cp);
    fm.setLocation(StandardLocation.SOURCE_PATH, List.of());
    fm.setLocation(StandardLocation.ANNOTATION_PROCESSOR_PATH, List.of());
    Path out = Paths.get(args[1]);
    List<String> options = List.of("-nowarn", "-Xmaxerrs", "50", "-proc:none", "-implicit:none");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      String[] f = line.split("\t");
      String root = f[0];
      int rc;
      String log;
      try {
        clean(out);
        Files.createDirectories(out);
        fm.setLocation(StandardLocation.CLASS_OUTPUT, List.of(out.toFile()));
        List<java.io.File> sources = new ArrayList<>();
        for (int i = 1; i < f.length; i++) {
          sources.add(new java.io.File(root, f[i]));
        }
        StringWriter w = new StringWriter();
        Iterable<? extends JavaFileObject> units = fm.getJavaFileObjectsFromFiles(sources);
        boolean ok = javac.getTask(w, fm, null, options, null, units).call();
        rc = ok ? 0 : 1;
        log = w.toString();
      } catch (StackOverflowError e) {
        rc = 4;
        log = "An exception has occurred in the compiler (java.lang.StackOverflowError): the source is too deeply nested\n";
      } catch (RuntimeException | IOException e) {
        rc = 4;
        log = "An exception has occurred in the compiler (" + e.getClass().getName() + ")\n";
      } catch (Error e) {
        // Out of memory or worse: this JVM is not to be trusted again.
        Runtime.getRuntime().halt(3);
        return;
      }
      log = log.replace(root.endsWith("/") ? root : root + "/", "");
      byte[] body = log.getBytes(StandardCharsets.UTF_8);
      answers.write((rc + " " + body.length + "\n").getBytes(StandardCharsets.US_ASCII));
      answers.write(body);
      answers.flush();
    }
  }

  // clean removes dir and everything under it (no symlink is followed).
  private static void clean(Path dir) throws IOException {
    if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) {
        Files.delete(p);
      }
    }
  }
}
