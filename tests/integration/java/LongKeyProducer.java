// Kafka's own Java producer with LongSerializer keys and its default partitioner: the oracle
// for where an int key belongs. Usage: LongKeyProducer BOOTSTRAP TOPIC KEY...
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class LongKeyProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        try (KafkaProducer<Long, String> producer =
                new KafkaProducer<>(props, new LongSerializer(), new StringSerializer())) {
            for (int i = 2; i < args.length; i++) {
                producer.send(new ProducerRecord<>(args[1], Long.parseLong(args[i]), "x")).get();
            }
        }
    }
}
