// Train.java: sample MapReduce job run at image build time only, so the
// AppCDS archive holds the classes a typical student jar job loads.
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

public class Train {
  public static class M extends Mapper<LongWritable, Text, Text, IntWritable> {
    private static final IntWritable ONE = new IntWritable(1);
    private final Text word = new Text();

    @Override
    protected void map(LongWritable k, Text v, Context ctx) throws IOException, InterruptedException {
      for (String w : v.toString().toLowerCase(Locale.ROOT).split("[^a-z]+")) {
        if (!w.isEmpty()) {
          word.set(w);
          ctx.write(word, ONE);
        }
      }
    }
  }

  public static class R extends Reducer<Text, IntWritable, Text, IntWritable> {
    @Override
    protected void reduce(Text k, Iterable<IntWritable> vs, Context ctx) throws IOException, InterruptedException {
      int sum = 0;
      for (IntWritable v : vs) {
        sum += v.get();
      }
      ctx.write(k, new IntWritable(sum));
    }
  }

  public static void main(String[] args) throws Exception {
    Job job = Job.getInstance(new Configuration(), "train");
    job.setJarByClass(Train.class);
    job.setMapperClass(M.class);
    job.setCombinerClass(R.class);
    job.setReducerClass(R.class);
    job.setOutputKeyClass(Text.class);
    job.setOutputValueClass(IntWritable.class);
    FileInputFormat.addInputPath(job, new Path(args[0]));
    FileOutputFormat.setOutputPath(job, new Path(args[1]));
    System.exit(job.waitForCompletion(true) ? 0 : 1);
  }
}
