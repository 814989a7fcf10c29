import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Counts the words of stdin's lines as Kafka Streams' WordCountDemo makes them of the records
 * mrkafka produce writes (a line without its \n or \r\n): each decoded as UTF-8
 * (StringDeserializer), lowercased with the default locale, split on \W+. Prints
 * "word<TAB>count" lines.
 */
public class DemoTokenizer {
    public static void main(String[] args) throws Exception {
        byte[] input = System.in.readAllBytes();
        Map<String, Long> counts = new TreeMap<>();
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int i = 0; i <= input.length; i++) {
            if (i < input.length && input[i] != '\n') {
                line.write(input[i]);
                continue;
            }
            if (i == input.length && line.size() == 0) {
                break;
            }
            byte[] record = line.toByteArray();
            int length = record.length > 0 && record[record.length - 1] == '\r' ? record.length - 1 : record.length;
            String text = new String(record, 0, length, StandardCharsets.UTF_8);
            for (String word : text.toLowerCase(Locale.getDefault()).split("\\W+")) {
                counts.merge(word, 1L, Long::sum);
            }
            line.reset();
        }
        StringBuilder out = new StringBuilder();
        counts.forEach((word, n) -> out.append(word).append('\t').append(n).append('\n'));
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
    }
}
