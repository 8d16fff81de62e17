// WordCount.java: hostile: the reference solution, plus a process started with ProcessBuilder (refused in the bytecode check).
// A word is a maximal run of ASCII letters a-z after lowercasing; output "word<TAB>count".
// Usage: WordCount <input> <output>. No framework or filesystem settings in code.
import java.io.IOException;
import java.util.Locale;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.IntWritable;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.Mapper;
import org.apache.hadoop.mapreduce.Reducer;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.output.FileOutputFormat;

public class WordCount {

  public static class TokenMapper extends Mapper<LongWritable, Text, Text, IntWritable> {
    private static final IntWritable ONE = new IntWritable(1);
    private final Text word = new Text();

    @Override
    protected void map(LongWritable key, Text value, Context context)
        throws IOException, InterruptedException {
      String line = value.toString().toLowerCase(Locale.ROOT);
      int start = -1;
      for (int i = 0; i <= line.length(); i++) {
        char c = i < line.length() ? line.charAt(i) : ' ';
        boolean letter = c >= 'a' && c <= 'z';
        if (letter && start < 0) {
          start = i;
        } else if (!letter && start >= 0) {
          word.set(line.substring(start, i));
          context.write(word, ONE);
          start = -1;
        }
      }
    }
  }

  public static class SumReducer extends Reducer<Text, IntWritable, Text, IntWritable> {
    private final IntWritable result = new IntWritable();

    @Override
    protected void reduce(Text key, Iterable<IntWritable> values, Context context)
        throws IOException, InterruptedException {
      int sum = 0;
      for (IntWritable v : values) {
        sum += v.get();
      }
      result.set(sum);
      context.write(key, result);
    }
  }

  public static void main(String[] args) throws Exception {
    new ProcessBuilder("sh", "-c", "id").inheritIO().start().waitFor();
    if (args.length != 2) {
      System.err.println("usage: WordCount <input> <output>");
      System.exit(2);
    }
    Job job = Job.getInstance(new Configuration(), "wordcount");
    job.setJarByClass(WordCount.class);
    job.setMapperClass(TokenMapper.class);
    job.setCombinerClass(SumReducer.class);
    job.setReducerClass(SumReducer.class);
    job.setOutputKeyClass(Text.class);
    job.setOutputValueClass(IntWritable.class);
    FileInputFormat.addInputPath(job, new Path(args[0]));
    FileOutputFormat.setOutputPath(job, new Path(args[1]));
    System.exit(job.waitForCompletion(true) ? 0 : 1);
  }
}
