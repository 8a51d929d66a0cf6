// Who the functions are inside the cluster: EKS access entries (the cluster's authentication mode must
// allow the EKS API). The ingest role only reads, through the AWS-managed view policy at cluster scope plus
// the reader group of deploy/rbac.yaml (node InternalIPs, which the view policy does not cover);
// the panic role gets no access policy at all, only the Kubernetes group that deploy/rbac.yaml binds to
// exactly the GlobalNetworkPolicy and tier verbs it needs.
import { Aws } from "aws-cdk-lib";
import * as eks from "aws-cdk-lib/aws-eks";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";

export const VIEW_ACCESS_POLICY = "AmazonEKSViewPolicy";
/** The group deploy/rbac.yaml binds to the panic ClusterRole (a test keeps the two in step). */
export const PANIC_KUBERNETES_GROUP = "calico-flows-panic";
/** The group deploy/rbac.yaml binds to the reader ClusterRole: nodes, which the view policy leaves out. */
export const READER_KUBERNETES_GROUP = "calico-flows-reader";

export interface ClusterAccessProps {
  readonly clusterName: string;
  /** Role that reads pods, nodes and namespaces to attribute IPs. @default - no entry */
  readonly ingestRole?: iam.IRole;
  readonly panicRole: iam.IRole;
  /** The Kubernetes group deploy/rbac.yaml binds to the panic ClusterRole. */
  readonly panicKubernetesGroup: string;
}

export class ClusterAccess extends Construct {
  readonly ingestEntry: eks.CfnAccessEntry | undefined;
  readonly panicEntry: eks.CfnAccessEntry;

  constructor(scope: Construct, id: string, props: ClusterAccessProps) {
    super(scope, id);
    if (props.ingestRole !== undefined) {
      this.ingestEntry = new eks.CfnAccessEntry(this, "Ingest", {
        clusterName: props.clusterName,
        principalArn: props.ingestRole.roleArn,
        type: "STANDARD",
        accessPolicies: [
          {
            policyArn: `arn:${Aws.PARTITION}:eks::aws:cluster-access-policy/${VIEW_ACCESS_POLICY}`,
            accessScope: { type: "cluster" },
          },
        ],
        kubernetesGroups: [READER_KUBERNETES_GROUP],
      });
    }
    this.panicEntry = new eks.CfnAccessEntry(this, "Panic", {
      clusterName: props.clusterName,
      principalArn: props.panicRole.roleArn,
      type: "STANDARD",
      kubernetesGroups: [props.panicKubernetesGroup],
    });
  }
}
