// Splits a text stream into lines (deno std's TextLineStream is not reachable from this machine).
export class TextLineStream extends TransformStream<string, string> {
  constructor() {
    let buffered = "";
    super({
      transform(chunk, controller) {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          controller.enqueue(buffered.slice(0, nl).replace(/\r$/, ""));
          buffered = buffered.slice(nl + 1);
        }
      },
      flush(controller) {
        if (buffered) controller.enqueue(buffered);
      },
    });
  }
}
