import { useEffect, useState } from "react";
import { useClient } from "urql";
import { graphql } from "@/lib/graphql";

const InlinePartQuery = graphql(`
  query ViewerInlinePart($uid: String!, $partId: String!, $mailbox: String!, $folder: String!) {
    emailAttachment(uid: $uid, partId: $partId, mailbox: $mailbox, folder: $folder) {
      contentType
      contentBase64
    }
  }
`);

export interface InlinePart {
  partId: string;
  contentId: string | null;
  contentType: string;
}

interface Args {
  html: string;
  parts: readonly InlinePart[];
  uid: string;
  mailbox: string;
  folder: string;
}

function bare(contentId: string): string {
  return contentId.replace(/^<|>$/g, "").toLowerCase();
}

/**
 * The images a message's HTML names by `cid:`, as data: URLs from its own parts (the
 * frame may load nothing else). Null until they are fetched; parts the HTML does not
 * name are never fetched.
 */
export function useInlineImages({ html, parts, uid, mailbox, folder }: Args): Map<string, string> | null {
  const client = useClient();
  const [images, setImages] = useState<Map<string, string> | null>(null);
  useEffect(() => {
    const lower = html.toLowerCase();
    const wanted = parts.filter(
      (part) =>
        part.contentId && part.contentType.startsWith("image/") && lower.includes(`cid:${bare(part.contentId)}`),
    );
    let live = true;
    void Promise.all(
      wanted.map(async (part) => {
        const result = await client
          .query(InlinePartQuery, { uid, partId: part.partId, mailbox, folder })
          .toPromise();
        const file = result.data?.emailAttachment;
        return file ? ([bare(part.contentId ?? ""), `data:${file.contentType};base64,${file.contentBase64}`] as const) : null;
      }),
    ).then((entries) => {
      if (live) setImages(new Map(entries.filter((entry) => entry !== null)));
    });
    return () => {
      live = false;
    };
  }, [client, html, parts, uid, mailbox, folder]);
  return images;
}
