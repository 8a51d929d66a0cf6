// Who the functions are inside the cluster: EKS access entries (the cluster's authentication mode must
// allow the EKS API). Neither role gets an EKS access policy, only a Kubernetes group that deploy/rbac.yaml binds
// to what its function does: the reader group to get and list pods, nodes and namespaces (the AWS-managed view
// policy would add every namespace's ConfigMaps, pod logs and events), the panic group to the panic
// GlobalNetworkPolicy's verbs and the policy and tier lists.
import * as eks from "aws-cdk-lib/aws-eks";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";

/** The group deploy/rbac.yaml binds to the panic ClusterRole (a test keeps the two in step). */
export const PANIC_KUBERNETES_GROUP = "calico-flows-panic";
/** The group deploy/rbac.yaml binds to the reader ClusterRole: get and list on pods, nodes and namespaces. */
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
