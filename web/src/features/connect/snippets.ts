// Copyable examples that send a first message to this server, or read it over the API.
import type { ServerAddress } from "./endpoints";

export interface Snippet {
  id: string;
  title: string;
  code: string;
}

const TO = "alice@example.com";
const FROM = "app@example.com";
const SUBJECT = "Hello from MailCue";

export function snippets(server: ServerAddress, port: number, username: string): Snippet[] {
  const { host, apiOrigin } = server;
  return [
    {
      id: "python",
      title: "Python smtplib",
      code: `import smtplib
from email.message import EmailMessage

message = EmailMessage()
message["From"] = "${FROM}"
message["To"] = "${TO}"
message["Subject"] = "${SUBJECT}"
message.set_content("It works.")

with smtplib.SMTP("${host}", ${port}) as smtp:
    smtp.send_message(message)
`,
    },
    {
      id: "nodemailer",
      title: "Node nodemailer",
      code: `import nodemailer from "nodemailer";

// Plain SMTP on the test port (ignoreTLS: the local CA is not in Node's trust store).
const transport = nodemailer.createTransport({
  host: "${host}",
  port: ${port},
  secure: false,
  ignoreTLS: true,
});

await transport.sendMail({
  from: "${FROM}",
  to: "${TO}",
  subject: "${SUBJECT}",
  text: "It works.",
});
`,
    },
    {
      id: "swaks",
      title: "swaks",
      code: `swaks --server ${host.includes(":") ? `[${host}]` : host}:${port} \\
  --from ${FROM} --to ${TO} \\
  --header "Subject: ${SUBJECT}" --body "It works."
`,
    },
    {
      id: "curl",
      title: "curl (REST API)",
      code: `# Sign in, then list the mailboxes and the newest mail of one.
TOKEN=$(curl -s -X POST ${apiOrigin}/api/v1/auth/login \\
  -H 'Content-Type: application/json' \\
  -d '{"username": "${username}", "password": "YOUR_PASSWORD"}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

curl -s ${apiOrigin}/api/v1/mailboxes -H "Authorization: Bearer $TOKEN"
curl -s ${apiOrigin}/api/v1/mailboxes/${TO}/emails -H "Authorization: Bearer $TOKEN"
`,
    },
  ];
}
