// A local SNS/SQS (fauxqs) on 127.0.0.1 and an ephemeral port, topics with SQS subscriptions to observe what
// SNS delivered, and a loopback proxy that injects the failures a real network produces (a 500, a response lost
// after the request was carried out) so delivery retries are tested end to end.
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CreateTopicCommand, SNSClient, SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecordAttributes } from "aws-lambda";
import { buildApp } from "fauxqs";

export const REGION = "eu-west-1";
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

export interface LocalSns {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  sns: SNSClient;
  sqs: SQSClient;
  /** An SNS client for another endpoint (the fault proxy), configured like the others. */
  snsClient(endpoint: string): SNSClient;
  close(): Promise<void>;
}

/** Starts fauxqs on loopback only (startFauxqs would listen on every interface). */
export async function startLocalSns(): Promise<LocalSns> {
  const app = buildApp({ logger: false, defaultRegion: REGION });
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  const endpoint = address.replace("localhost", "127.0.0.1");
  const clients: { destroy(): void }[] = [];
  const snsClient = (at: string) => {
    const client = new SNSClient({ endpoint: at, region: REGION, credentials });
    clients.push(client);
    return client;
  };
  const sqs = new SQSClient({ endpoint, region: REGION, credentials });
  clients.push(sqs);
  return {
    endpoint,
    sns: snsClient(endpoint),
    sqs,
    snsClient,
    async close() {
      for (const c of clients) c.destroy();
      await app.close();
    },
  };
}

export interface SubscriptionOptions {
  /** SNS filter policy on message attributes. */
  filterPolicy?: Record<string, unknown>;
  /** Deliver the message itself (attributes as SQS message attributes) instead of the SNS envelope. */
  raw?: boolean;
}

export async function createTopic(local: LocalSns, name: string): Promise<string> {
  const fifo = name.endsWith(".fifo");
  const topic = await local.sns.send(
    new CreateTopicCommand({ Name: name, ...(fifo ? { Attributes: { FifoTopic: "true" } } : {}) }),
  );
  if (topic.TopicArn === undefined) throw new Error(`CreateTopic ${name} returned no ARN`);
  return topic.TopicArn;
}

/** Creates a queue subscribed to the topic; returns the queue URL. */
export async function subscribeQueue(
  local: LocalSns,
  topicArn: string,
  queueName: string,
  options: SubscriptionOptions = {},
): Promise<string> {
  const fifo = queueName.endsWith(".fifo");
  const queue = await local.sqs.send(
    new CreateQueueCommand({ QueueName: queueName, ...(fifo ? { Attributes: { FifoQueue: "true" } } : {}) }),
  );
  const queueUrl = queue.QueueUrl;
  if (queueUrl === undefined) throw new Error(`CreateQueue ${queueName} returned no URL`);
  const attributes = await local.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }),
  );
  const subscriptionAttributes: Record<string, string> = {};
  if (options.filterPolicy !== undefined)
    subscriptionAttributes.FilterPolicy = JSON.stringify(options.filterPolicy);
  if (options.raw) subscriptionAttributes.RawMessageDelivery = "true";
  await local.sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: "sqs",
      Endpoint: attributes.Attributes?.QueueArn,
      Attributes: subscriptionAttributes,
      ReturnSubscriptionArn: true,
    }),
  );
  return queueUrl;
}

/**
 * Receives and deletes every message in the queue. fauxqs fans a publish out before answering it, so once the
 * publishes have resolved the queue holds everything they delivered: an empty receive means drained.
 */
export async function drainQueue(local: LocalSns, queueUrl: string): Promise<Message[]> {
  const out: Message[] = [];
  for (;;) {
    const page = await local.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
        MessageSystemAttributeNames: ["All"],
      }),
    );
    const messages = page.Messages ?? [];
    if (messages.length === 0) return out;
    out.push(...messages);
    await local.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  }
}

/** The SNS notification envelope an SQS subscription without raw delivery receives. */
export interface SnsEnvelope {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

export function envelopeOf(message: Message): SnsEnvelope {
  if (message.Body === undefined) throw new Error("SQS message without a body");
  return JSON.parse(message.Body) as SnsEnvelope;
}

/**
 * The `{ default, email }` structure of a `MessageStructure: json` publish. Real SNS hands an SQS subscriber
 * only the `default` value; fauxqs passes the whole structure through, which lets tests check both parts.
 */
export function structureOf(message: Message): { default: string; email: string } {
  return JSON.parse(envelopeOf(message).Message) as { default: string; email: string };
}

/**
 * The SQS event Lambda hands a function for messages of a raw subscription (drained from its queue), each body as
 * real SNS delivers it: a JSON-structured publish (`MessageStructure: json`) reaches an SQS subscriber as its
 * `default` value, where fauxqs passes the whole `{ default, email }` structure through.
 */
export function sqsEventOf(messages: readonly Message[], queueArn: string): SQSEvent {
  const delivered = (body: string) => {
    try {
      const structure = JSON.parse(body) as { default?: unknown };
      if (typeof structure.default === "string") return structure.default;
    } catch {
      // A plain publish: delivered as it is.
    }
    return body;
  };
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId ?? "",
      receiptHandle: m.ReceiptHandle ?? "",
      body: delivered(m.Body ?? ""),
      attributes: m.Attributes as unknown as SQSRecordAttributes,
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: queueArn,
      awsRegion: REGION,
    })),
  };
}

/** What the proxy does with one request. */
export type Fault = "forward" | "fail" | "lose-response";

export interface FaultProxy {
  endpoint: string;
  /** Every request seen, with the SNS/SQS `Action` and what was done with it. */
  seen: { action: string | null; params: URLSearchParams; fault: Fault }[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of fauxqs. `decide` picks, per request, whether to forward it, to answer a
 * 500 InternalFailure without forwarding (SNS never saw it), or to forward it and then drop the connection
 * before the answer (SNS carried it out, the caller cannot know).
 */
export async function startFaultProxy(
  target: string,
  decide: (params: URLSearchParams) => Fault,
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const seen: FaultProxy["seen"] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const params = new URLSearchParams(body.toString("utf8"));
      const fault = decide(params);
      seen.push({ action: params.get("Action"), params, fault });
      if (fault === "fail") {
        res.writeHead(500, { "content-type": "text/xml" });
        res.end(
          '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Receiver</Type>' +
            "<Code>InternalFailure</Code><Message>injected failure</Message></Error>" +
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
        );
        return;
      }
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (answer) => {
          const reply: Buffer[] = [];
          answer.on("data", (c: Buffer) => reply.push(c));
          answer.on("end", () => {
            if (fault === "lose-response") {
              req.socket.destroy();
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(reply));
          });
        },
      );
      forward.on("error", (error) => {
        res.writeHead(502);
        res.end(String(error));
      });
      forward.end(body);
    });
  });
  // Idle connections stay open (see fault-proxy.ts): none is closed under a client about to reuse it.
  server.keepAliveTimeout = 0;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
